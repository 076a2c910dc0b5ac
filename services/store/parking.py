"""Parked stories in the store: the dead letters, the parked marks, and unparking.

Rules:
- parking is one transaction on the partition's slot: the dead letter (``keys.dead``, a stream
  kept as the incident's record), the story's mark (``keys.parked``), and the acknowledgement of
  the feed entries in hand, all or nothing (the projector decides when: ``projector/parked.py``);
- ``retry`` unparks the story and rings its feed with the story's head event, so a projector
  folds it from the record where its projection stopped (the feed is a doorbell, the record the
  truth);
- ``parked`` and ``count`` read what is parked now, for the API, the CLI and the metrics.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import cast

import orjson
from pydantic import JsonValue

from events.errors import UnknownStory
from services.store import keys
from services.store.connection import Client
from services.store.keys import GROUP

log = logging.getLogger("dateline.store")


async def park(
    client: Client, p: int, story: str, letter: dict[str, JsonValue], ids: Sequence[bytes]
) -> None:
    """Park ``story`` (of partition ``p``) with ``letter``, acknowledging its feed entries
    ``ids``, in one transaction."""
    async with client.pipeline(transaction=True) as tx:  # one slot: the partition's tag
        tx.xadd(keys.dead(p), {"letter": orjson.dumps(letter)})
        tx.hset(keys.parked(p), story, orjson.dumps(letter))
        if ids:
            tx.xack(keys.feed(p), GROUP, *ids)
        await tx.execute()


async def is_parked(client: Client, p: int, story: str) -> bool:
    return bool(await client.hexists(keys.parked(p), story))


async def parked(client: Client) -> list[dict[str, JsonValue]]:
    """Every story parked now, with what parked it, by story."""
    async with client.pipeline(transaction=False) as pipe:
        for p in range(keys.partitions()):
            pipe.hgetall(keys.parked(p))
        replies = cast("list[dict[bytes, bytes]]", await pipe.execute())
    found = [orjson.loads(raw) for reply in replies for raw in reply.values()]
    return sorted(found, key=lambda letter: str(letter["story"]))


async def count(client: Client) -> int:
    """How many stories are parked now."""
    async with client.pipeline(transaction=False) as pipe:
        for p in range(keys.partitions()):
            pipe.hlen(keys.parked(p))
        return sum(int(n) for n in await pipe.execute())


async def retry(client: Client, story: str) -> dict[str, JsonValue]:
    """Unpark ``story`` and ring its feed with its head event, so a projector folds it again
    from where its projection stopped; what had parked it. ``UnknownStory`` if not parked."""
    p = keys.partition(story)
    raw = await client.hget(keys.parked(p), story)
    if raw is None:
        raise UnknownStory(f"story {story!r} is not parked")
    head = cast(
        "list[tuple[bytes, dict[bytes, bytes]]]",
        await client.xrevrange(keys.events(story), count=1),
    )
    async with client.pipeline(transaction=True) as tx:
        tx.hdel(keys.parked(p), story)
        if head:
            entry_id, fields = head[0]
            version = entry_id.decode().partition("-")[0]
            tx.xadd(keys.feed(p), {"s": story, "v": version, "__data__": fields[b"e"]})
        await tx.execute()
    letter: dict[str, JsonValue] = orjson.loads(raw)
    log.warning("unparked %s (parked at version %s): folding it again", story, letter["version"])
    return letter
