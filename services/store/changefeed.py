"""Following every partition's changes stream: the one tail that gateways and APIs both run.

Rules:
- the tail starts at the last entry each partition's stream holds (``positions``), never at
  "$": XREAD re-reads "$" as the newest id at each call, so an entry appended between two calls
  to a partition the tail had not read yet would be skipped;
- it hands each entry, in stream order, to ``on_entry(story, fields)``; the entry's digit fields
  are its changes (``project.lua`` writes a run of versions as one entry, beside ``s``);
- every reply, empty or not, is reported to ``on_reply`` (the tail is alive and current as of
  then); a failed read to ``on_failure`` (what it knew may be stale), then the tail waits
  ``RETRY_AFTER`` and reads again from where it was.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

import redis.asyncio as redis
from redis.asyncio.cluster import RedisCluster

from events.errors import StoreUnavailable
from services.store import identity, keys
from services.store.connection import Client

log = logging.getLogger("dateline.changefeed")

BLOCK_MS = 1_000
"""How long one XREAD waits for a change before it returns empty (and the tail reports a reply)."""
COUNT = 1_000
"""Entries one XREAD returns at most."""
RETRY_AFTER = 0.5
"""Seconds between a failed read and the next attempt."""

Entries = list[tuple[bytes, dict[bytes, bytes]]]
"""Stream entries as redis-py returns them without ``decode_responses``: (id, fields)."""
Streams = list[tuple[bytes, Entries]]
"""An XREAD reply: (stream name, its entries)."""
Positions = dict[str, bytes | str]
"""Where the tail is: each partition stream's name and the id of the last entry it has read."""
OnEntry = Callable[[str, Mapping[bytes, bytes]], None]


def _nothing() -> None:
    return None


def _logged(error: Exception) -> None:
    log.warning("change tail failed: %r", error)


async def positions(client: Client) -> Positions:
    """Each partition's last entry now ("0-0" for a stream not made yet): where a tail starts.
    The store's partition count is adopted first (a gateway may learn the store only here)."""
    await identity.adopt_layout(client)
    names = [keys.partition_changes(p) for p in range(keys.partitions())]
    async with client.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.xrevrange(name, count=1)
        tops = await pipe.execute()
    return {name: top[0][0] if top else "0-0" for name, top in zip(names, tops, strict=True)}


async def follow(
    client: Client,
    on_entry: OnEntry,
    streams: Positions | None = None,
    *,
    on_reply: Callable[[], None] = _nothing,
    on_failure: Callable[[Exception], None] = _logged,
) -> None:
    """Follow every partition's changes stream from ``streams`` (default: now) on, forever.

    On one server, one XREAD reads them all. A cluster refuses a read across slots (CROSSSLOT),
    so there each partition has a read of its own, side by side; the tail is then reported
    alive (``on_reply``) only while no partition's read is failing, and a failing one is
    reported (``on_failure``) as it fails.
    """
    while streams is None:
        try:
            streams = await positions(client)
        except (redis.RedisError, StoreUnavailable) as error:
            on_failure(error)
            await asyncio.sleep(RETRY_AFTER)
    if not isinstance(client, RedisCluster):
        await _follow(client, on_entry, streams, on_reply, on_failure)
        return
    failing: set[str] = set()

    def replied(name: str) -> Callable[[], None]:
        def reply() -> None:
            failing.discard(name)
            if not failing:
                on_reply()

        return reply

    def failed(name: str) -> Callable[[Exception], None]:
        def failure(error: Exception) -> None:
            failing.add(name)
            on_failure(error)

        return failure

    async with asyncio.TaskGroup() as group:
        for name, position in streams.items():
            group.create_task(
                _follow(client, on_entry, {name: position}, replied(name), failed(name))
            )


async def _follow(
    client: Client,
    on_entry: OnEntry,
    streams: Positions,
    on_reply: Callable[[], None],
    on_failure: Callable[[Exception], None],
) -> None:
    while True:
        try:
            replies: Streams = await client.xread(  # type: ignore[assignment]  # bytes, not decoded
                streams,  # type: ignore[arg-type]  # redis-py's StreamIdT forgets bytes ids
                count=COUNT,
                block=BLOCK_MS,
            )
        except asyncio.CancelledError:
            raise
        except Exception as error:
            on_failure(error)
            await asyncio.sleep(RETRY_AFTER)
            continue
        for stream, entries in replies:
            name = stream.decode() if isinstance(stream, bytes) else stream
            for entry_id, fields in entries:
                streams[name] = entry_id
                on_entry(fields[b"s"].decode(), fields)
        on_reply()
