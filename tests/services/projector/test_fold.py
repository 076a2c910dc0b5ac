"""The projector on the real server: exactly-once folding, shared work, claims, gaps.

These tests run projectors of their own, each on a database of its own (``isolated_url``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import redis.asyncio as redis
from hypothesis import given

from events.decide import parse_command, parse_open
from projections.changes import View, step
from projections.story import StoryState, render, replay
from services.projector.fold import (
    Consumers,
    Projector,
    ensure_groups,
    frame,
)
from services.realtime.frames import changes_of
from services.store import keys
from services.store.keys import CHANGES_KEPT, GROUP
from services.store.readmodel import ReadModel
from services.store.record import Store
from tests.strategies import PROPERTIES, STORY, histories


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


async def test_two_projectors_share_the_work_and_apply_each_event_once(world: tuple) -> None:
    """Two projectors in one group split the feed; together they apply every event exactly once."""
    url, client, store = world
    a, b = Projector(client, store), Projector(client, store)
    brokers = [Consumers(url, lambda: a, "a"), Consumers(url, lambda: b, "b")]
    for broker in brokers:
        await broker.start()
    try:
        heads = await fill(store, 20, 12)
        await wait_projected(client, heads)
    finally:
        for broker in brokers:
            await broker.stop()
    assert a.applied > 0
    assert b.applied > 0
    assert a.applied + b.applied == sum(heads.values())
    for story in heads:
        await assert_state_is_a_fresh_fold(client, store, story)


async def test_a_redelivered_batch_is_skipped(world: tuple) -> None:
    """Folding the same events twice changes nothing the second time."""
    _, client, store = world
    heads = await fill(store, 2, 5)
    envelopes = [e for s in heads for e in await store.read(s)]
    projector = Projector(client, store)
    await projector.project(envelopes)
    before = await ReadModel(client).story("p-0", 500, None)
    await projector.project(envelopes)
    assert projector.skipped == len(envelopes)
    assert projector.applied == len(envelopes)
    assert await ReadModel(client).story("p-0", 500, None) == before


async def test_a_gap_is_read_from_the_record(world: tuple) -> None:
    """Given only the tail of a story, the projector reads the events before it and folds all."""
    _, client, store = world
    await fill(store, 1, 8)
    events = await store.read("p-0")
    await Projector(client, store).project(events[5:])
    await assert_state_is_a_fresh_fold(client, store, "p-0")


async def test_a_dead_projectors_pending_events_are_claimed(world: tuple) -> None:
    """Events read but never acknowledged by a projector that died are taken over and applied."""
    url, client, store = world
    heads = await fill(store, 4, 6)
    assert await take_everything(client, "dead") == sum(heads.values())
    live = Projector(client, store)
    broker = Consumers(url, lambda: live, "live", claim_idle_ms=300)
    await broker.start()
    try:
        await wait_projected(client, heads)
    finally:
        await broker.stop()
    pending = [await client.xpending(keys.feed(p), GROUP) for p in range(keys.PARTITIONS)]
    assert sum(x["pending"] for x in pending) == 0
    for story in heads:
        await assert_state_is_a_fresh_fold(client, store, story)


async def take_everything(client: redis.Redis, consumer: str) -> int:
    """Read every feed as ``consumer`` and never acknowledge: a projector that dies mid-batch."""
    taken = 0
    for p in range(keys.PARTITIONS):
        got = await client.xreadgroup(GROUP, consumer, {keys.feed(p): ">"}, count=1000)
        taken += sum(len(msgs) for _, msgs in got)
    return taken


async def recover(url: str, projector: Projector, name: str) -> int:
    """What a projector named ``name`` takes over as it starts."""
    return await Consumers(url, lambda: projector, name).recover()


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


async def test_a_restart_folds_what_a_dead_local_projector_left_at_once(world: tuple) -> None:
    """At start, events held by a projector of this host that no longer runs are folded at
    once, not after the idle claim: a reader's min_version right after a restart gets them."""
    url, client, store = world
    heads = await fill(store, 4, 6)
    dead = f"{socket.gethostname()}-{dead_pid()}"
    assert await take_everything(client, dead) == sum(heads.values())
    taken = await recover(url, Projector(client, store), "me-1")
    assert taken == sum(heads.values())
    for story, head in heads.items():
        assert await ReadModel(client).version(story) == head
        await assert_state_is_a_fresh_fold(client, store, story)
    for p in range(keys.PARTITIONS):
        assert (await client.xpending(keys.feed(p), GROUP))["pending"] == 0
        names = [c["name"] for c in await client.xinfo_consumers(keys.feed(p), GROUP)]
        assert dead.encode() not in names


async def test_a_restart_under_its_own_name_folds_its_old_batch(world: tuple) -> None:
    """A container restarted with the same hostname and pid is the same consumer: what that
    name held before the restart is folded at start."""
    url, client, store = world
    heads = await fill(store, 2, 4)
    await take_everything(client, "box-1")
    assert await recover(url, Projector(client, store), "box-1") == sum(heads.values())
    for story in heads:
        await assert_state_is_a_fresh_fold(client, store, story)


async def test_a_projector_that_may_be_alive_elsewhere_is_left_to_the_idle_claim(
    world: tuple,
) -> None:
    """Another host's projector, or a live local one, keeps its batch: recovery takes nothing."""
    url, client, store = world
    heads = await fill(store, 2, 4)
    await take_everything(client, "other-host-77")
    assert await recover(url, Projector(client, store), "me-1") == 0
    alive = f"{socket.gethostname()}-{os.getpid()}"
    for p in range(keys.PARTITIONS):  # hand the batch to a live process of this host
        held = await client.xpending_range(keys.feed(p), GROUP, "-", "+", 1000)
        if held:
            await client.xclaim(keys.feed(p), GROUP, alive, 0, [h["message_id"] for h in held])
    assert await recover(url, Projector(client, store), "me-1") == 0
    feeds = [keys.feed(p) for p in range(keys.PARTITIONS)]
    pending = [(await client.xpending(feed, GROUP))["pending"] for feed in feeds]
    assert sum(pending) == sum(heads.values())


class FailsOnce(Projector):
    """A projector whose first batch fails, as when the store drops mid-write."""

    failed = 0

    async def project(self, envelopes: Any, delivered: Any = None) -> None:
        if not self.failed:
            self.failed += 1
            raise ConnectionError("the store went away")
        await super().project(envelopes, delivered)


async def test_a_failed_batch_is_logged_stays_pending_and_is_folded_by_the_claimer(
    world: tuple, caplog: pytest.LogCaptureFixture
) -> None:
    """The handler does not wait for a batch's writes; when they fail, nothing is lost."""
    url, client, store = world
    heads = await fill(store, 3, 5)
    projector = FailsOnce(client, store)
    consumers = Consumers(url, lambda: projector, "flaky", claim_idle_ms=300)
    with caplog.at_level(logging.ERROR, logger="dateline.projector"):
        await consumers.start()
        try:
            await wait_projected(client, heads)
        finally:
            await consumers.stop()
    assert projector.failed == 1
    assert "folding a batch failed" in caplog.text
    for story in heads:
        await assert_state_is_a_fresh_fold(client, store, story)
    pending = [
        (await client.xpending(keys.feed(p), GROUP))["pending"] for p in range(keys.PARTITIONS)
    ]
    assert sum(pending) == 0


async def kept_changes(client: redis.Redis, story: str) -> list[tuple[int, bytes]]:
    return [c for _, f in await client.xrange(keys.changes(story)) for c in changes_of(f)]


async def test_the_changes_stream_keeps_the_last_changes_each_written_once(world: tuple) -> None:
    """Batch after batch, a story's changes stream holds at least its last ``CHANGES_KEPT``
    changes, consecutive up to the head, each exactly the frame its fold makes; rebuilding the
    state from the record writes none of them again."""
    _, client, store = world
    await store.append("long", parse_open({"story": "long", "title": "Long"}), actor="editor:a")
    for i in range(CHANGES_KEPT + 150):
        data = {"body": f"<p>{i}</p>", "entry_id": f"e{i}"}
        await store.append("long", parse_command("entry.published", data), actor="editor:a")
    record = await store.read("long")
    projector = Projector(client, store)
    for at in range(0, len(record), 100):
        await projector.project(record[at : at + 100])
    kept = await kept_changes(client, "long")
    versions = [v for v, _ in kept]
    assert versions == list(range(versions[0], len(record) + 1))
    assert len(versions) >= CHANGES_KEPT
    assert versions[0] > 1  # and older ones go: the stream does not grow with the story
    view, frames = View(StoryState("long")), {}
    for envelope in record:
        view, change = step(view, envelope)
        frames[envelope.version] = orjson.dumps(change)
    assert all(change == frames[v] for v, change in kept)
    await client.delete(keys.meta("long"), keys.entries("long"), keys.order("long"))
    await Projector(client, store).project(record)  # rebuilt from the record, in one run
    assert await kept_changes(client, "long") == kept
    await assert_state_is_a_fresh_fold(client, store, "long")


@PROPERTIES
@given(histories())
def test_a_change_frame_is_the_change_serialized_byte_for_byte(events: list[Any]) -> None:
    """The projector writes frames from parts; readers get exactly ``orjson.dumps(change)``."""
    view = View(StoryState(STORY))
    for envelope in events:
        view, change = step(view, envelope)
        entry = change["entry"]
        raw = orjson.dumps(entry) if entry is not None else b"null"
        assert frame(orjson.dumps(STORY), change, raw) == orjson.dumps(change)
