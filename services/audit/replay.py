"""Replay: the story as readers saw it at any version or moment (CONTRACT.md "HTTP API", audit
rows; docs/audit.md). ``Audit`` is the room's face: replays here, revisions and verification in
their own modules.

Rules:
- the record (the story's stream) is the only source of truth; everything else here is derived:
  checkpoints are checked before use (digest and version hash); the projector's indexes (entry
  versions, the publish order) are written atomically with the state and trusted for speed;
- ``replay(N)`` starts from the projector's checkpoint at or below N (one every
  ``CHECKPOINT_EVERY`` versions: the story-level view with its version's hash and a digest of
  itself), folds the events after it, and builds each entry on the page from that entry's own
  events (the entry index); a checkpoint whose digest or version hash does not match the
  record is bypassed for the one before it; without a checkpoint, or while the projector has not
  reached N, the replay folds the record from version 1;
- ``at=T`` means the last event recorded at or before T (an event at exactly T included).
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime
from typing import cast

import orjson
from immutables import Map
from pydantic import JsonValue

from events.chain import Envelope, Verification, canonical
from events.errors import BadRequest, UnknownStory
from projections.changes import View, step
from projections.story import Entry, StoryState, apply, page, render
from services.audit import revisions, verify
from services.store import keys
from services.store.connection import Client, reachable
from services.store.keys import CHECKPOINT_EVERY
from services.store.readmodel import ReadModel
from services.store.record import Store


def parse_at(value: str) -> str:
    """An ISO 8601 time with a zone, as the record writes times (UTC, microseconds, ``Z``)."""
    try:
        moment = datetime.fromisoformat(value.strip().replace("z", "Z"))
    except ValueError:
        raise BadRequest(
            f"at must be an ISO 8601 time, not {value!r}", {"parameter": "at"}
        ) from None
    if moment.tzinfo is None:
        raise BadRequest("at needs a time zone (e.g. Z or +01:00)", {"parameter": "at"})
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Audit:
    """Replays, revisions and verification over one store."""

    def __init__(self, client: Client, store: Store, reads: ReadModel) -> None:
        self.client = client
        self.store = store
        self.reads = reads
        self.bypassed = 0
        """Checkpoints found damaged or stale and passed by (exposed as a metric)."""

    async def head(self, story: str) -> int:
        version, _ = await self.store.head(story)
        if version == 0:
            raise UnknownStory(f"story {story!r} does not exist")
        return version

    async def _at(self, story: str, version: int) -> Envelope:
        found = await self.store.read(story, version, version)
        if not found:
            raise UnknownStory(f"story {story!r} has no version {version}")
        return found[0]

    async def version_at(self, story: str, at: str) -> tuple[int, str]:
        """The last version recorded at or before ``at`` (binary search over the record)."""
        moment = parse_at(at)
        low, high = 1, await self.head(story)
        first = await self._at(story, 1)
        if first.recorded_at > moment:
            raise UnknownStory(f"story {story!r} was not open yet at {moment}")
        while low < high:  # invariant: the event at ``low`` was recorded at or before ``moment``
            middle = (low + high + 1) // 2
            if (await self._at(story, middle)).recorded_at <= moment:
                low = middle
            else:
                high = middle - 1
        return low, moment

    # -- replay ----------------------------------------------------------------------------------

    async def replay(
        self,
        story: str,
        version: int,
        limit: int,
        before: int | None = None,
        *,
        checkpoints: bool = True,
    ) -> dict[str, JsonValue]:
        """The story state as readers saw it at ``version``: one page, as ``GET /stories``."""
        head = await self.head(story)
        if version < 1 or version > head:
            raise BadRequest(
                f"version must be between 1 and {head}",
                {"parameter": "version", "current_version": head},
            )
        if not checkpoints or await self.reads.version(story) < version:
            return await self.replay_from_start(story, version, limit, before)
        base, view = await self._checkpoint(story, version)
        events = await self.store.read(story, base + 1, version) if version > base else []
        touched = {i for e in events if (i := e.entry_id) is not None}
        entries = await self._entries_at(story, touched, base)
        view = replace(view, state=view.state._replace(entries=Map(entries)))
        for envelope in events:
            view, _ = step(view, envelope)
        high = version if before is None else min(version, before - 1)
        with reachable():
            found = await self.client.zrevrangebyscore(
                keys.order(story), high, "-inf", start=0, num=limit + 1
            )
            ids = [i.decode() for i in cast("list[bytes]", found)]
        state = view.state
        others = await self._entries_at(story, {i for i in ids if i not in state.entries}, version)
        shown = [
            state.entries.get(i) or others[i] for i in ids if i in state.entries or i in others
        ]
        return page(
            state.meta_json(),
            view.pinned,
            list(view.key_events),
            [e.to_json() for e in shown],
            limit,
        )

    async def replay_from_start(
        self, story: str, version: int, limit: int, before: int | None = None
    ) -> dict[str, JsonValue]:
        """The same answer, folding every event from version 1 (no derived data used)."""
        state = StoryState(story)
        async for envelope in self.store.iterate(story):
            if envelope.version > version:
                break
            state = apply(state, envelope)
        return render(state, limit, before)

    async def _checkpoint(self, story: str, version: int) -> tuple[int, View]:
        """The newest sound checkpoint at or below ``version`` (0 and an empty view if none)."""
        mark = version - version % CHECKPOINT_EVERY
        while mark > 0:
            with reachable():
                raw = cast(
                    "bytes | None", await self.client.hget(keys.checkpoints(story), str(mark))
                )
            view = await self._sound(story, mark, raw) if raw is not None else None
            if view is not None:
                return mark, view
            mark -= CHECKPOINT_EVERY
        return 0, View(StoryState(story))

    async def _sound(self, story: str, mark: int, raw: bytes) -> View | None:
        """The checkpoint's view if it is intact and of this record; None (bypassed) if not."""
        try:
            saved = orjson.loads(raw)
            body = saved["view"]
            intact = (
                saved["version"] == mark
                and hashlib.sha256(canonical(body)).hexdigest() == saved["digest"]
                and (await self._at(story, mark)).hash == saved["event_hash"]
            )
            if not intact:
                self.bypassed += 1
                return None
            pinned = body["pinned"]
            state = StoryState.from_meta(body["meta"], pinned["entry_id"] if pinned else None)
            return View(state, pinned, tuple(body["key_events"]))
        except (KeyError, TypeError, ValueError, orjson.JSONDecodeError):
            self.bypassed += 1
            return None

    async def _entries_at(self, story: str, ids: set[str], version: int) -> dict[str, Entry]:
        """Each entry as it stood at ``version``, folded from its own events (if it existed)."""
        if not ids or version < 1:
            return {}
        with reachable():
            indexed = await revisions.entry_versions(self.client, story, sorted(ids))
            wanted = {name: [v for v in vs if v <= version] for name, vs in indexed.items()}
            async with self.client.pipeline(transaction=False) as pipe:
                order = [(name, v) for name, vs in wanted.items() for v in vs]
                for _, v in order:
                    pipe.xrange(keys.events(story), f"{v}-0", f"{v}-0")
                rows = await pipe.execute()
        folded: dict[str, StoryState] = {}
        for (name, _), found in zip(order, rows, strict=True):
            for _, fields in found:
                envelope = Envelope.model_validate_json(fields[b"e"])
                folded[name] = apply(folded.get(name) or StoryState(story), envelope)
        return {
            name: state.entries[name] for name, state in folded.items() if name in state.entries
        }

    async def revisions(self, story: str, entry_id: str) -> dict[str, JsonValue]:
        """Every body the entry has had (``services.audit.revisions``)."""
        return await revisions.revisions(self.client, self.store, self.reads, story, entry_id)

    async def verify(self, story: str) -> Verification:
        """The chain re-walked from the record alone (``services.audit.verify``)."""
        return await verify.verify(self.store, story)
