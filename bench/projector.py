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
- ``real projector``: ``services.projector.build_broker`` + ``Projector`` (FastStream batch
  consumers), started after the feed is filled, timed until every story's projected version
  (its meta hash) reaches its head;
- ``bare loop + Projector.project`` (for information): the bare loop, but folding with
  ``Projector.project`` (the same state writes as the real one, without FastStream), on a wiped
  projection, so the table shows FastStream's share apart from our state writes.

Target (bench/floors.py): the real projector >= 0.5x the bare loop's events/s.

    .venv/bin/python -m bench.projector [--quick] [--fsync everysec]
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time
import uuid
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
from services import keys
from services.projector import GROUP, Projector, build_broker, ensure_groups
from services.redisclient import connect
from services.store import Store

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

    feeds = [keys.feed(p) for p in range(keys.PARTITIONS)]
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
        for p in range(keys.PARTITIONS):
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
    """Start the FastStream projector on the filled feeds; seconds until every story is projected."""
    await ensure_groups(client)
    own = connect(url)  # as services.serve.Projection connects
    store = Store(own)
    start = time.perf_counter()
    broker = build_broker(url, lambda: Projector(own, store), name="bench")
    await broker.start()
    try:
        # Polled every 10 ms, cheaply (it shares the projector's loop and core): 16 XINFO GROUPS,
        # done when no feed has an entry undelivered or unacknowledged (project.lua acknowledges
        # with the state write); then every story's projected version is checked once.
        while not await drained(client):
            if time.perf_counter() - start > limit:
                raise RuntimeError(f"the projector did not finish within {limit:.0f} s")
            await asyncio.sleep(0.01)
        seconds = time.perf_counter() - start
        if not await projected(client, dict(heads)):
            raise RuntimeError("the feeds are drained but some story is not projected")
        return seconds
    finally:
        await broker.stop()
        await own.aclose()


async def wipe_projection(client: redis.Redis, stories: Sequence[str]) -> None:
    """Delete everything but the record (streams, heads) and the feeds: the projection starts anew."""
    record = {k(s).encode() for s in stories for k in (keys.events, keys.head)}
    record |= {keys.feed(p).encode() for p in range(keys.PARTITIONS)}
    doomed = [name async for name in client.scan_iter(count=1_000) if name not in record]
    for at in range(0, len(doomed), 1_000):
        await client.delete(*doomed[at : at + 1_000])


async def measure(url: str, options: Options) -> list[Check]:
    per_story = 50 if options.quick else 1_000
    stories = story_ids("proj")
    client = redis.Redis.from_url(url)
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

        cpu: dict[str, tuple[float, float]] = {}

        async def meter(name: str, work: Awaitable[Any]) -> Any:
            ours, server = time.process_time(), await valkey_cpu(client)
            result = await work
            cpu[name] = (time.process_time() - ours, await valkey_cpu(client) - server)
            return result

        apply_n, apply_s = await meter("apply", bare_loop(client, "bench-apply", fold_in_memory))
        if apply_n != total or any(states[s].version != per_story for s in stories):
            raise RuntimeError("the bare loop did not fold every event")
        bare_n, bare_s = await meter("bare", bare_loop(client, "bench-fold", step_in_memory))
        if bare_n != total or any(views[s].state.version != per_story for s in stories):
            raise RuntimeError("the bare loop did not fold every event")

        states.clear()  # the floors' folds: not ours to carry (or to walk in a GC pass)
        views.clear()
        gc.collect()
        real_s = await meter("real", real_projector(url, client, heads, limit=600))

        await wipe_projection(client, stories)
        own = connect(url)
        projector = Projector(own, Store(own))

        async def fold_projector(raws: list[bytes]) -> None:
            await projector.project([Envelope.model_validate_json(raw) for raw in raws])

        proj_n, proj_s = await meter("project", bare_loop(client, "bench-project", fold_projector))
        if not await projected(client, dict(heads)):
            raise RuntimeError("the bare loop with Projector.project left stories behind")
    finally:
        await client.aclose()

    bare_rate = bare_n / bare_s
    rows = [
        (
            "bare loop (XREADGROUP, parse, the projector's fold in memory, XACK)",
            "bare",
            bare_n,
            bare_s,
        ),
        ("bare loop folding the state alone (information)", "apply", apply_n, apply_s),
        ("real projector (FastStream + Projector)", "real", total, real_s),
        ("bare loop + Projector.project", "project", proj_n, proj_s),
    ]
    table(
        f"folding {total:,} queued events, COUNT {COUNT}, {keys.PARTITIONS} feeds",
        [
            "measure",
            "events",
            "seconds",
            "events/s",
            "x bare loop",
            "our CPU us/event",
            "Valkey CPU us/event",
        ],
        [
            [
                name,
                fmt(n),
                fmt(s, 2),
                fmt(n / s),
                fmt(n / s / bare_rate, 2),
                fmt(cpu[key][0] / n * 1e6, 1),
                fmt(cpu[key][1] / n * 1e6, 1),
            ]
            for name, key, n, s in rows
        ],
    )
    checks = [Check(PROJECTOR, "real projector events/s", total / real_s, bare_rate, "events/s")]
    checks_table("targets", checks)
    return checks


def main(argv: Sequence[str] | None = None) -> int:
    return on_own_valkey(__doc__.splitlines()[0], measure, argv)


if __name__ == "__main__":
    sys.exit(main())
