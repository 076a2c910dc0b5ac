"""The projector's consumers on the real server: shared work, claims, recovery at start, failed
batches. These tests run projectors of their own, each on a database of its own."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import time
from typing import Any

import pytest
import redis.asyncio as redis

from events.decide import parse_command
from services.projector.consumers import Consumers
from services.projector.fold import Projector, Unfoldable
from services.store import keys
from services.store.keys import GROUP
from services.store.readmodel import ReadModel
from tests.services.projector.conftest import assert_state_is_a_fresh_fold, fill, wait_projected


async def test_two_projectors_share_the_work_and_apply_each_event_once(world: tuple) -> None:
    """Two projectors in one group split the feed; together they apply every event exactly once."""
    url, client, store = world
    a, b = Projector(client, store), Projector(client, store)
    consumers = [Consumers(url, lambda: a, "a"), Consumers(url, lambda: b, "b")]
    for each in consumers:
        await each.start()
    try:
        heads = await fill(store, 20, 12)
        await wait_projected(client, heads)
    finally:
        for each in consumers:
            await each.stop()
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
    consumers = Consumers(url, lambda: live, "live", claim_idle_ms=300)
    await consumers.start()
    try:
        await wait_projected(client, heads)
    finally:
        await consumers.stop()
    pending = [await client.xpending(keys.feed(p), GROUP) for p in range(keys.partitions())]
    assert sum(x["pending"] for x in pending) == 0
    for story in heads:
        await assert_state_is_a_fresh_fold(client, store, story)


async def take_everything(client: redis.Redis, consumer: str) -> int:
    """Read every feed as ``consumer`` and never acknowledge: a projector that dies mid-batch."""
    taken = 0
    for p in range(keys.partitions()):
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
    for p in range(keys.partitions()):
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
    for p in range(keys.partitions()):  # hand the batch to a live process of this host
        held = await client.xpending_range(keys.feed(p), GROUP, "-", "+", 1000)
        if held:
            await client.xclaim(keys.feed(p), GROUP, alive, 0, [h["message_id"] for h in held])
    assert await recover(url, Projector(client, store), "me-1") == 0
    feeds = [keys.feed(p) for p in range(keys.partitions())]
    pending = [(await client.xpending(feed, GROUP))["pending"] for feed in feeds]
    assert sum(pending) == sum(heads.values())


class FailsOnce(Projector):
    """A projector whose first batch fails, as when the store drops mid-write."""

    failed = 0

    async def project(self, envelopes: Any, delivered: Any = None) -> list[Unfoldable]:
        if not self.failed:
            self.failed += 1
            raise ConnectionError("the store went away")
        return await super().project(envelopes, delivered)


async def test_a_failed_batch_is_logged_stays_pending_and_is_folded_by_the_claimer(
    world: tuple, caplog: pytest.LogCaptureFixture
) -> None:
    """The handler does not wait for a batch's writes; when they fail, nothing is lost."""
    url, client, store = world
    heads = await fill(store, 3, 5)
    projector = FailsOnce(client, store)
    consumers = Consumers(url, lambda: projector, "flaky", claim_idle_ms=300)
    with caplog.at_level(logging.WARNING, logger="dateline.projector"):
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
        (await client.xpending(keys.feed(p), GROUP))["pending"] for p in range(keys.partitions())
    ]
    assert sum(pending) == 0


class RefusesStory(Projector):
    """A projector that cannot fold one story's events (a bug, or an event it cannot apply)."""

    story = "p-1"

    async def project(self, envelopes: Any, delivered: Any = None) -> list[Unfoldable]:
        envelopes = list(envelopes)
        if any(e.story == self.story for e in envelopes):
            raise ValueError(f"cannot fold {self.story}")
        return await super().project(envelopes, delivered)


async def test_a_story_that_cannot_be_folded_holds_back_only_itself(
    world: tuple, caplog: pytest.LogCaptureFixture
) -> None:
    """One read brings every feed's events as one batch; when a story in it cannot be folded,
    the others are still written, and only that story's entries stay pending."""
    url, client, store = world
    heads = await fill(store, 4, 5)  # a backlog of 40 events: one read, one batch
    projector = RefusesStory(client, store)
    consumers = Consumers(url, lambda: projector, "picky")
    with caplog.at_level(logging.ERROR, logger="dateline.projector"):
        await consumers.start()
        try:
            await wait_projected(client, {s: h for s, h in heads.items() if s != "p-1"})
        finally:
            await consumers.stop()
    assert await ReadModel(client).version("p-1") == 0
    assert "folding the events of ['p-1'] failed" in caplog.text
    pending = await client.xpending(keys.feed_of("p-1"), GROUP)
    assert pending["pending"] == heads["p-1"]
    for story in heads.keys() - {"p-1"}:
        await assert_state_is_a_fresh_fold(client, store, story)


async def test_stop_ends_a_blocked_read_at_once(
    world: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A projector asked to stop does not wait out its read's block (here 60 s)."""
    url, client, store = world
    monkeypatch.setattr("services.projector.consumers.POLL_MS", 60_000)
    consumers = Consumers(url, lambda: Projector(client, store), "quick-stop")
    await consumers.start()
    await asyncio.sleep(0.3)  # the read is blocked on the empty feeds
    began = time.monotonic()
    await asyncio.wait_for(consumers.stop(), 10)
    assert time.monotonic() - began < 10


async def test_a_lost_group_is_made_again_and_projection_goes_on(
    world: tuple, caplog: pytest.LogCaptureFixture
) -> None:
    """The group removed from every feed under a running projector (a store emptied under
    it, say): the projector says so, creates the group again and folds what comes next."""
    url, client, store = world
    heads = await fill(store, 2, 4)
    projector = Projector(client, store)
    consumers = Consumers(url, lambda: projector, "regrouped")
    with caplog.at_level(logging.ERROR, logger="dateline.projector"):
        await consumers.start()
        try:
            await wait_projected(client, heads)
            for p in range(keys.partitions()):
                await client.xgroup_destroy(keys.feed(p), GROUP)
            more = {}
            for story in heads:
                late = {"body": "<p>late</p>", "entry_id": "late"}
                await store.append(story, parse_command("entry.published", late), actor="e:a")
                more[story] = (await store.head(story))[0]
            await wait_projected(client, more)
        finally:
            await consumers.stop()
    assert "group is gone" in caplog.text
    for story in more:
        await assert_state_is_a_fresh_fold(client, store, story)
