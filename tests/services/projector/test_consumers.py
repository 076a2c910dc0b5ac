"""The projector's consumers on the real server: shared work, claims, recovery at start, failed
batches. These tests run projectors of their own, each on a database of its own."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
from typing import Any

import pytest
import redis.asyncio as redis

from services.projector.consumers import Consumers
from services.projector.fold import Projector
from services.store import keys
from services.store.keys import GROUP
from services.store.readmodel import ReadModel
from tests.services.projector.conftest import assert_state_is_a_fresh_fold, fill, wait_projected


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
