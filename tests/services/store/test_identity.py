"""The store's identity: one id on every partition, learned once; an emptied or mixed store is
refused, and an append to a store that is not the one the writer knows writes nothing."""

from __future__ import annotations

import pytest
import redis.asyncio as redis

from events.decide import parse_open
from events.errors import StoreUnavailable
from services.store import identity, keys
from services.store.record import Store


async def test_a_new_store_gets_one_id_on_every_partition(isolated_url: str) -> None:
    """The first process to use a store writes one id everywhere; the next learns the same."""
    client = redis.Redis.from_url(isolated_url)
    try:
        first = await identity.learn(client)
        assert await identity.marks(client) == [first] * keys.partitions()
        assert await identity.learn(client) == first
        assert await identity.check(client, first) is None
    finally:
        await client.aclose()


async def test_marks_missing_on_some_partitions_are_a_lost_store(isolated_url: str) -> None:
    """Part of the marks gone (part of the data lost) is refused, never patched over."""
    client = redis.Redis.from_url(isolated_url)
    try:
        first = await identity.learn(client)
        await client.delete(keys.mark(3))
        with pytest.raises(StoreUnavailable) as refused:
            await identity.learn(client)
        assert refused.value.details["store"] == "lost"  # type: ignore[index,call-overload]
        assert await identity.check(client, first) is not None
    finally:
        await client.aclose()


async def test_an_append_to_an_emptied_store_writes_nothing(
    isolated_url: str, story_id: str
) -> None:
    """A writer that knows the store's id, on a store flushed under it: 503, nothing written."""
    store = Store.from_url(isolated_url)
    try:
        await store.identify()
        await store.client.flushdb()
        with pytest.raises(StoreUnavailable, match="emptied or replaced"):
            await store.append(story_id, parse_open({"story": story_id, "title": "T"}), actor="e:a")
        assert await store.client.dbsize() == 0
    finally:
        await store.close()
