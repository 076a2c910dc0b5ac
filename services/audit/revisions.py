"""Revisions: every body an entry has had, with who, when, why, and a diff from the one before
(CONTRACT.md "Details that tests rely on", revisions; docs/audit.md).

Rules:
- ``entry.published``, ``entry.edited``, ``entry.corrected`` and ``entry.retracted`` (body null)
  each make one revision, in version order; ``note`` is null where the event has none;
- an entry's events are found through the projector's indexes (its publication is its score in
  ``order``, every later event a member of ``entry-index``), written atomically with the state
  and trusted for speed; events the projector has not reached yet are read from the record.
"""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import JsonValue

from events.chain import Envelope
from events.errors import UnknownEntry, UnknownStory
from services.store import keys
from services.store.connection import Client, reachable
from services.store.readmodel import ReadModel
from services.store.record import Store

REVISION_TYPES = ("entry.published", "entry.edited", "entry.corrected", "entry.retracted")


async def entry_versions(client: Client, story: str, names: list[str]) -> dict[str, list[int]]:
    """The projected versions of the events about each entry, in order: its publication
    (its score in the paging index) and its members in the entry index (every later one)."""
    async with client.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.zscore(keys.order(story), name)
            pipe.zrange(keys.entry_index(story), *keys.entry_index_range(name), bylex=True)
        replies = await pipe.execute()
    out = {}
    for n, name in enumerate(names):
        published, members = replies[2 * n : 2 * n + 2]
        versions = set(_versions(members))  # a set: older indexes also hold the publication
        if published is not None:
            versions.add(int(published))
        out[name] = sorted(versions)
    return out


async def revisions(
    client: Client, store: Store, reads: ReadModel, story: str, entry_id: str
) -> dict[str, JsonValue]:
    """Every body the entry has had, with who, when, why, and a diff from the one before."""
    if (await store.head(story))[0] == 0:
        raise UnknownStory(f"story {story!r} does not exist")
    projected = await reads.version(story)  # first: the index holds at least this much
    with reachable():
        versions = (await entry_versions(client, story, [entry_id]))[entry_id]
    events: list[Envelope] = []
    for v in versions:
        events += await store.read(story, v, v)
    async for envelope in store.iterate(story, projected + 1):  # not yet indexed
        if envelope.entry_id == entry_id and envelope.version not in versions:
            events.append(envelope)
    if not any(e.type == "entry.published" for e in events):
        raise UnknownEntry(f"entry {entry_id!r} does not exist in story {story!r}")
    out: list[JsonValue] = []
    body: str | None = None
    headline: str | None = None
    for envelope in sorted(events, key=lambda e: e.version):
        if envelope.type not in REVISION_TYPES:
            continue
        data = envelope.data
        new_body = _text(data.get("body")) if envelope.type != "entry.retracted" else None
        if envelope.type in ("entry.published", "entry.edited") and "headline" in data:
            headline = _text(data.get("headline"))
        out.append(
            {
                "version": envelope.version,
                "type": envelope.type,
                "actor": envelope.actor,
                "recorded_at": envelope.recorded_at,
                "body": new_body,
                "headline": headline,
                "note": _text(data.get("note")),
                "diff": "" if not out else _diff(body or "", new_body or "", out[-1], envelope),
            }
        )
        body = new_body
    return {"story": story, "entry_id": entry_id, "revisions": out}


def _versions(members: list[bytes]) -> list[int]:
    """The versions in an entry's index members (``<entry id>:<version>``), in order."""
    return [int(m.rsplit(b":", 1)[1]) for m in members]


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _diff(before: str, after: str, previous: Any, envelope: Envelope) -> str:
    """A unified diff between two bodies, one line per HTML block so changes read as lines."""
    old = [f"{line}\n" for line in before.replace("><", ">\n<").splitlines()]
    new = [f"{line}\n" for line in after.replace("><", ">\n<").splitlines()]
    return "".join(
        difflib.unified_diff(
            old,
            new,
            fromfile=f"v{previous['version']}",
            tofile=f"v{envelope.version}",
            lineterm="\n",
        )
    )
