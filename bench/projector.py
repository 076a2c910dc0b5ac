"""The projector: events/s folding a filled feed into story state, beside a bare read-and-fold loop.

The feed is built first, on one fresh embedded Valkey: 100 stories, each ``story.opened`` then
``entry.published`` events (100,000 events in all; ``--quick`` 5,000), sealed with
``events.chain.seal`` into a proper hash chain and written with pipelined plain commands (XADD to
the story's stream as ``append.lua`` writes it, HSET of its head, XADD to its partition's feed),
stories interleaved on the feeds as live appends would be. Building through ``Store.append`` would
cost minutes under ``appendfsync always``, and what is measured here starts after the feed is full.

Then, each from the start of the feeds in a consumer group of its own:
- ``bare loop`` (the floor): one task per feed, XREADGROUP COUNT 100 + parse the envelopes + fold
  them with the projector's own fold, ``projections.changes.step`` (the story state and the change
  frame each event makes, serialized once), into views kept in memory (no state writes) + XACK;
- ``bare loop folding the state alone`` (for information): the same with
  ``projections.story.apply`` only, no change frames: a stricter floor than the issue asks for;
- ``real projector``: ``services.projector.consumers.Consumers`` + ``Projector`` (one
  XREADGROUP of every feed, batches folded side by side) on a wiped projection, started after the feed is filled, timed until the projector
  has written every event (then the server confirms every feed drained, every story at its head);
- ``bare loop + Projector.project`` (for information): the bare loop, but folding with
  ``Projector.project`` (the same state writes as the real one, without the consumers' reading
  and chaining), on a wiped projection, so the table shows the consumers' share apart from our
  state writes.

The bare loop and the real projector run in five interleaved rounds, the order flipped each
round, each timed run on a freshly rewritten append-only file; the table gives every run and the
median, and the target compares the medians. The two information rows run once, after them.

Target (bench/floors.py): the real projector >= 0.5x the bare loop's events/s.

    .venv/bin/python -m bench.projector [--quick] [--fsync everysec]
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import redis.asyncio as redis

from bench.common import (
    ACTOR,
    PUBLISH,
    Check,
    Options,
    checks_table,
    fmt,
    machine_line,
    median,
    on_own_valkey,
    say,
    story_ids,
    table,
    valkey_cpu,
)
from bench.floors import PROJECTOR
from events.chain import GENESIS, Envelope, seal
from events.entries import EntryPublished
from events.story import StoryOpened
from projections.changes import View, step
from projections.story import StoryState, apply
from services.projector.consumers import Consumers
from services.projector.feeds import ensure_groups
from services.projector.fold import Projector
from services.store import keys
from services.store.connection import connect
from services.store.keys import GROUP
from services.store.record import Store

FILL_PIPELINE = 2_000
COUNT = 100
Fold = Callable[[list[bytes]], Awaitable[None]]


def envelopes(stories: Sequence[str], per_story: int) -> list[tuple[str, int, str, bytes]]:
    """Sealed envelopes (story, version, hash, JSON) for every story, interleaved by version."""
    start = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)
    heads = dict.fromkeys(stories, GENESIS)
    out = []
    for version in range(1, per_story + 1):
        at = (start + timedelta(milliseconds=version)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        for story in stories:
            if version == 1:
                event: StoryOpened | EntryPublished = StoryOpened(title=f"Story {story}")
            else:
                event = EntryPublished(entry_id=f"e{version:06d}", **PUBLISH)
            envelope = seal(
                event_id=str(uuid.uuid4()),
                story=story,
                version=version,
                type=event.TYPE,
                data=event.to_data(),
                actor=ACTOR,
                recorded_at=at,
                idempotency_key=None,
                prev_hash=heads[story],
            )
            heads[story] = envelope.hash
            out.append((story, version, envelope.hash, envelope.to_json()))
    return out


async def fill(client: redis.Redis, sealed: list[tuple[str, int, str, bytes]]) -> None:
    """Write the record, the heads and the feeds as ``append.lua`` would, pipelined."""
    for at in range(0, len(sealed), FILL_PIPELINE):
        async with client.pipeline(transaction=False) as pipe:
            for story, version, digest, body in sealed[at : at + FILL_PIPELINE]:
                pipe.xadd(keys.events(story), {"f": "1", "e": body}, id=f"{version}-0")
                pipe.hset(keys.head(story), mapping={"v": version, "h": digest})
                pipe.xadd(keys.feed_of(story), {"s": story, "v": version, "__data__": body})
            await pipe.execute()


async def bare_loop(client: redis.Redis, group: str, fold: Fold) -> tuple[int, float]:
    """One task per feed: XREADGROUP COUNT 100, ``fold`` the envelopes, XACK, until empty."""
    done = 0

    feeds = [keys.feed(p) for p in range(keys.partitions())]
    for feed in feeds:
        await client.xgroup_create(feed, group, id="0", mkstream=True)

    async def consume(feed: str) -> None:
        nonlocal done
        while True:
            reply = await client.xreadgroup(group, "bench", {feed: ">"}, count=COUNT)
            rows = reply[0][1] if reply else []
            if not rows:
                return
            await fold([fields[b"__data__"] for _, fields in rows])
            await client.xack(feed, group, *(stream_id for stream_id, _ in rows))
            done += len(rows)

    start = time.perf_counter()
    await asyncio.gather(*(consume(feed) for feed in feeds))
    return done, time.perf_counter() - start


async def projected(client: redis.Redis, heads: dict[str, int]) -> bool:
    """Whether every story's projected version reached its head; drops the ones that did."""
    names = list(heads)
    async with client.pipeline(transaction=False) as pipe:
        for story in names:
            pipe.hget(keys.meta(story), "version")
        versions = await pipe.execute()
    for story, version in zip(names, versions, strict=True):
        if int(version or 0) >= heads[story]:
            del heads[story]
    return not heads


async def drained(client: redis.Redis) -> bool:
    """Whether the projectors' group has every feed entry delivered and acknowledged."""
    async with client.pipeline(transaction=False) as pipe:
        for p in range(keys.partitions()):
            pipe.xinfo_groups(keys.feed(p))
        replies = await pipe.execute()
    for groups in replies:
        ours = [g for g in groups if g["name"] == GROUP.encode()]
        if not ours or ours[0]["pending"] or ours[0]["lag"]:
            return False
    return True


async def real_projector(
    url: str, client: redis.Redis, heads: dict[str, int], limit: float
) -> float:
    """Start the projector's consumers on the filled feeds; seconds until every story is projected.

    The end is seen from the projector's own count of events written (a write counts once
    ``project.lua`` has stored it and acknowledged its feed entry), checked every 2 ms in memory:
    polling the server instead took the projector's core from it. Then the server is asked once
    that every feed is drained and every story at its head.
    """
    await ensure_groups(client)
    own = connect(url)  # as services.run.serve.Projection connects
    store = Store(own)
    made: list[Projector] = []

    def factory() -> Projector:
        made.append(Projector(own, store))
        return made[-1]

    total = sum(heads.values())
    start = time.perf_counter()
    consumers = Consumers(url, factory, name="bench")
    await consumers.start()
    try:
        while not made or made[0].applied < total:
            if time.perf_counter() - start > limit:
                raise RuntimeError(f"the projector did not finish within {limit:.0f} s")
            await asyncio.sleep(0.002)
        seconds = time.perf_counter() - start
        if not await drained(client) or not await projected(client, dict(heads)):
            raise RuntimeError("the projector counted every event, but the server disagrees")
        return seconds
    finally:
        await consumers.stop()
        await own.aclose()


async def wipe_projection(client: redis.Redis, stories: Sequence[str]) -> None:
    """Delete everything but the record (streams, heads) and the feeds, and every consumer group
    on the feeds: the next run starts from the same server state as the first."""
    record = {k(s).encode() for s in stories for k in (keys.events, keys.head)}
    record |= {keys.feed(p).encode() for p in range(keys.partitions())}
    doomed = [name async for name in client.scan_iter(count=1_000) if name not in record]
    for at in range(0, len(doomed), 1_000):
        await client.delete(*doomed[at : at + 1_000])
    for p in range(keys.partitions()):
        for group in await client.xinfo_groups(keys.feed(p)):
            await client.xgroup_destroy(keys.feed(p), group["name"])


async def compact_aof(client: redis.Redis) -> None:
    """Rewrite the append-only file and wait for it: every timed run starts on a compact AOF.

    Automatic rewrites are off in the benches (a forked rewrite would land on whichever run
    happens to be going), so the file only grew, by about 150 MB a run of ours. Valkey's CPU
    per event grew with it (23 us in the first run, 28 us in the third), which handed whatever
    ran later a slower server. In service, automatic rewrites keep the file near its data.
    """
    await client.bgrewriteaof()
    while True:
        info = await client.info("persistence")
        if not info["aof_rewrite_in_progress"] and not info["aof_rewrite_scheduled"]:
            return
        await asyncio.sleep(0.05)


async def measure(url: str, options: Options) -> list[Check]:
    per_story = 50 if options.quick else 1_000
    rounds = 1 if options.quick else 5
    stories = story_ids("proj")
    client = redis.Redis.from_url(url)
    runs: dict[str, list[tuple[float, float, float]]] = defaultdict(
        list
    )  # seconds, CPU ours, Valkey
    try:
        say(machine_line(options))
        began = time.perf_counter()
        sealed = envelopes(stories, per_story)
        sealed_s = time.perf_counter() - began
        await fill(client, sealed)
        total = len(sealed)
        say(
            f"feed: {len(stories)} stories x {per_story} events = {total:,} events "
            f"(envelope ~{len(sealed[-1][3])} bytes), sealed in {sealed_s:.1f} s, written in "
            f"{time.perf_counter() - began - sealed_s:.1f} s with pipelined XADD/HSET (not Store.append)"
        )
        heads = dict.fromkeys(stories, per_story)
        del sealed

        states: dict[str, StoryState] = {}
        views: dict[str, View] = {}

        async def fold_in_memory(raws: list[bytes]) -> None:
            for raw in raws:
                envelope = Envelope.model_validate_json(raw)
                state = states.get(envelope.story) or StoryState(envelope.story)
                states[envelope.story] = apply(state, envelope)

        async def step_in_memory(raws: list[bytes]) -> None:
            """The projector's own fold: the state and the change frame of each event."""
            for raw in raws:
                envelope = Envelope.model_validate_json(raw)
                view = views.get(envelope.story) or View(StoryState(envelope.story))
                views[envelope.story], change = step(view, envelope)
                orjson.dumps(change)

        async def meter(name: str, work: Awaitable[Any]) -> Any:
            await wipe_projection(client, stories)  # the same server state for every run
            await compact_aof(client)
            gc.collect()  # what the run before left is not this one's to collect
            ours, server = time.process_time(), await valkey_cpu(client)
            begun = time.perf_counter()
            result = await work
            seconds = time.perf_counter() - begun
            mine, theirs = time.process_time() - ours, await valkey_cpu(client) - server
            runs[name].append((seconds, mine, theirs))
            say(
                f"  {name:8} {total / seconds:9,.0f} events/s, CPU per event: ours "
                f"{mine / total * 1e6:5.1f} us, Valkey {theirs / total * 1e6:5.1f} us"
            )
            return result

        async def floor() -> None:
            views.clear()
            done, _ = await meter("bare", bare_loop(client, "bench-fold", step_in_memory))
            if done != total or any(views[s].state.version != per_story for s in stories):
                raise RuntimeError("the bare loop did not fold every event")
            views.clear()  # the floor's fold: not ours to carry (or to walk in a GC pass)

        async def ours() -> None:
            await meter("real", real_projector(url, client, heads, limit=600))

        # Interleaved rounds, the order flipped each round (floor, ours; ours, floor; ...): what
        # runs second in a process runs on a heap and a server the first one used, which moved
        # either side by up to 15% in single runs.
        for n in range(rounds):
            for run in (floor, ours) if n % 2 == 0 else (ours, floor):
                await run()

        apply_n, _ = await meter("apply", bare_loop(client, "bench-apply", fold_in_memory))
        if apply_n != total or any(states[s].version != per_story for s in stories):
            raise RuntimeError("the bare loop did not fold every event")
        states.clear()

        own = connect(url)
        projector = Projector(own, Store(own))

        async def fold_projector(raws: list[bytes]) -> None:
            await projector.project([Envelope.model_validate_json(raw) for raw in raws])

        try:
            await meter("project", bare_loop(client, "bench-project", fold_projector))
        finally:
            await own.aclose()
        if not await projected(client, dict(heads)):
            raise RuntimeError("the bare loop with Projector.project left stories behind")
    finally:
        await client.aclose()

    def rate(key: str) -> float:
        return median([total / seconds for seconds, _, _ in runs[key]])

    bare_rate = rate("bare")
    names = {
        "bare": "bare loop (XREADGROUP, parse, the projector's fold in memory, XACK)",
        "apply": "bare loop folding the state alone (information)",
        "real": "real projector (Consumers + Projector)",
        "project": "bare loop + Projector.project (information)",
    }
    rows = []
    for key, name in names.items():
        got = runs[key]
        rows.append(
            [
                name,
                str(len(got)),
                " ".join(fmt(total / seconds) for seconds, _, _ in got),
                fmt(rate(key)),
                fmt(rate(key) / bare_rate, 2),
                fmt(median([c for _, c, _ in got]) / total * 1e6, 1),
                fmt(median([v for _, _, v in got]) / total * 1e6, 1),
            ]
        )
    table(
        f"folding {total:,} queued events, COUNT {COUNT}, {keys.partitions()} feeds; "
        f"median of {rounds} interleaved round(s)",
        [
            "measure",
            "runs",
            "events/s per run",
            "median events/s",
            "x bare loop",
            "our CPU us/event",
            "Valkey CPU us/event",
        ],
        rows,
    )
    checks = [Check(PROJECTOR, "real projector events/s", rate("real"), bare_rate, "events/s")]
    checks_table("targets", checks)
    return checks


def main(argv: Sequence[str] | None = None) -> int:
    return on_own_valkey(__doc__.splitlines()[0], measure, argv)


if __name__ == "__main__":
    sys.exit(main())
