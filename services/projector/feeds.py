"""The projector's feeds: their consumer group, their upkeep, and reading their entries.

Rules:
- the group is created on every feed from id ``0``, so nothing appended before the first
  projector started is missed;
- a feed is trimmed only up to the oldest entry the group has not delivered or not acknowledged;
  the record streams are never trimmed;
- a feed entry is parsed once, where it is read or claimed; one that holds no envelope is a
  poison event of the story it names (``services/projector/parked.py``), never a stopped reader.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Mapping

import redis.asyncio as redis

from events.chain import Envelope
from services.projector.fold import Unfoldable
from services.store import keys
from services.store.connection import Client
from services.store.keys import GROUP

TRIM_EVERY_S = 30.0
"""How often a projector trims each feed up to what the group has acknowledged."""
DATA = b"__data__"
"""The feed entry's field holding the envelope (``append.lua`` writes it)."""


async def ensure_groups(client: Client) -> None:
    """Create the projectors' group on every feed, from the feed's start (so nothing is missed)."""
    for p in range(keys.partitions()):
        try:
            await client.xgroup_create(keys.feed(p), GROUP, id="0", mkstream=True)
        except redis.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise


async def trim_feeds(client: Client) -> None:
    """Drop feed entries every projector has acknowledged (the record keeps them forever)."""
    for p in range(keys.partitions()):
        feed = keys.feed(p)
        groups = await client.xinfo_groups(feed)
        floor: bytes | None = None
        for group in groups:
            candidates = [group["last-delivered-id"]]
            if group["pending"]:
                summary = await client.xpending(feed, group["name"])
                candidates.append(summary["min"])
            low = min(candidates, key=_id_key)
            floor = low if floor is None else min(floor, low, key=_id_key)
        if floor is not None and floor != b"0-0":
            await client.xtrim(feed, minid=floor, approximate=True)


async def trim_forever(client: Client) -> None:
    """Trim the feeds every ``TRIM_EVERY_S``, for as long as the projector runs (best effort:
    a failed round only lets the feeds grow until the next)."""
    while True:
        await asyncio.sleep(TRIM_EVERY_S)
        with contextlib.suppress(Exception):
            await trim_feeds(client)


def _id_key(stream_id: bytes | str) -> tuple[int, int]:
    """A stream id as (milliseconds, sequence), so ids compare as the stream orders them."""
    text = stream_id.decode() if isinstance(stream_id, bytes) else stream_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def envelopes_of(
    entries: Iterable[tuple[bytes, Mapping[bytes, bytes] | None]],
) -> tuple[list[Envelope], list[bytes], list[tuple[Unfoldable, bytes]]]:
    """The envelopes of read or claimed feed entries and their ids, and each entry that holds
    no envelope (written around the API, or damaged) as a poison event with its id. An entry
    without fields (one trimmed meanwhile, as a server may send) has nothing to fold."""
    envelopes: list[Envelope] = []
    ids: list[bytes] = []
    bad: list[tuple[Unfoldable, bytes]] = []
    for entry_id, fields in entries:
        if not fields:
            continue
        try:
            envelopes.append(Envelope.model_validate_json(fields[DATA]))
        except (KeyError, ValueError) as error:
            story = fields.get(b"s", b"").decode(errors="replace")
            version = fields.get(b"v", b"0").decode(errors="replace")
            reason = f"the feed entry holds no envelope: {type(error).__name__}: {error}"
            poison = Unfoldable(story, int(version) if version.isdigit() else 0, reason, None)
            bad.append((poison, entry_id))
            continue
        ids.append(entry_id)
    return envelopes, ids, bad
