"""The projector's feeds: their consumer group, their upkeep, and reading their entries.

Rules:
- the group is created on every feed from id ``0``, so nothing appended before the first
  projector started is missed;
- a feed is trimmed only up to the oldest entry the group has not delivered or not acknowledged;
  the record streams are never trimmed;
- a feed entry is parsed once, where it is read or claimed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Mapping

import redis.asyncio as redis

from events.chain import Envelope
from services.store import keys
from services.store.keys import GROUP

TRIM_EVERY_S = 30.0
"""How often a projector trims each feed up to what the group has acknowledged."""
DATA = b"__data__"
"""The feed entry's field holding the envelope (``append.lua`` writes it)."""


async def ensure_groups(client: redis.Redis) -> None:
    """Create the projectors' group on every feed, from the feed's start (so nothing is missed)."""
    for p in range(keys.PARTITIONS):
        try:
            await client.xgroup_create(keys.feed(p), GROUP, id="0", mkstream=True)
        except redis.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise


async def trim_feeds(client: redis.Redis) -> None:
    """Drop feed entries every projector has acknowledged (the record keeps them forever)."""
    for p in range(keys.PARTITIONS):
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


async def trim_forever(client: redis.Redis) -> None:
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
) -> tuple[list[Envelope], list[bytes]]:
    """The envelopes of claimed feed entries and their ids (an entry without fields, if a server
    sends one for an entry trimmed meanwhile, has nothing to fold)."""
    found = [(i, fields) for i, fields in entries if fields]
    return [Envelope.model_validate_json(f[DATA]) for _, f in found], [i for i, _ in found]
