"""What the projector tests share: a database of their own with the groups made, stories filled
through the store, and the check that a projected state is a fresh fold of the record."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis

from events.decide import parse_command, parse_open
from projections.story import render, replay
from services.projector.feeds import ensure_groups
from services.store.readmodel import ReadModel
from services.store.record import Store


@pytest.fixture
async def world(isolated_url: str) -> AsyncIterator[tuple[str, redis.Redis, Store]]:
    client = redis.Redis.from_url(isolated_url)
    store = Store(client)
    await ensure_groups(client)
    yield isolated_url, client, store
    await client.aclose()


async def fill(store: Store, stories: int, entries: int) -> dict[str, int]:
    """Open stories and give them entries, corrections, a pin and a retraction."""
    heads = {}
    for n in range(stories):
        s = f"p-{n}"
        await store.append(s, parse_open({"story": s, "title": f"Story {n}"}), actor="editor:a")
        for i in range(entries):
            data = {"body": f"<p>{i}</p>", "entry_id": f"e{i}", "key_event": i % 3 == 0}
            await store.append(s, parse_command("entry.published", data), actor="editor:a")
        cmds = [
            (
                "entry.corrected",
                {"entry_id": "e1", "body": "<p>fixed</p>", "note": "A name was wrong."},
            ),
            ("entry.pinned", {"entry_id": "e0"}),
            ("entry.retracted", {"entry_id": "e3", "note": "Not confirmed."}),
            ("embed.attached", {"entry_id": "e2", "kind": "link", "url": "https://example.org/a"}),
        ]
        for kind, data in cmds:
            await store.append(s, parse_command(kind, data), actor="editor:a")
        heads[s] = (await store.head(s))[0]
    return heads


async def wait_projected(client: redis.Redis, heads: dict[str, int], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    reads = ReadModel(client)
    while time.monotonic() < deadline:
        versions = [await reads.version(s) for s in heads]
        if versions == list(heads.values()):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"projection stuck at {versions}, heads {list(heads.values())}")


async def assert_state_is_a_fresh_fold(client: redis.Redis, store: Store, story: str) -> None:
    expected = render(replay(story, await store.read(story)), limit=500)
    assert await ReadModel(client).story(story, 500, None) == expected
