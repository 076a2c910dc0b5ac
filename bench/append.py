"""Store.append against the store alone: events/s at 1, 8, 32 writers and single-append latency.

Measures, on one fresh embedded Valkey, over 100 stories (opened first), each configuration for a
fixed time, in interleaved rounds (the rate is the median of the rounds; latencies are pooled):

- ``Store.append``: the real write path (facts in memory, decision, seal, ``append.lua``) with an
  ``entry.published`` command parsed once, from 1, 8 and 32 asyncio writers picking stories
  round-robin;
- ``bare script``: a minimal version-checked EVALSHA (HGET the head version, XADD, HSET the head)
  of the same envelope bytes, arguments computed in Python without decision or seal code, at the
  same concurrency; ``bare script + feed`` also XADDs to a feed as ``append.lua`` does (for
  information: what the fan-out to the projector costs the server); at 8 writers, for information,
  ``Store.append`` of a longer entry (1.4 KB body with 12 links: the body check grows with it);
- ``XADD``: plain redis-py XADD of the same bytes, one at a time (round-trip latency) and pipelined
  100 at a time (what the server takes when the client costs nothing).

Targets (bench/floors.py): Store.append events/s >= 0.8x the bare script at the same concurrency;
Store.append p50 with one writer <= 1.3x a plain XADD round trip.

    .venv/bin/python -m bench.append [--quick] [--fsync everysec]
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import time
from collections.abc import Awaitable, Callable, Sequence

import redis.asyncio as redis

from bench.common import (
    ACTOR,
    BARE_SCRIPT,
    LONG_PUBLISH,
    PUBLISH,
    Check,
    Options,
    Run,
    checks_table,
    machine_line,
    on_own_valkey,
    runs_table,
    say,
    story_ids,
    valkey_cpu,
)
from bench.floors import APPEND_LATENCY, APPEND_THROUGHPUT
from events.decide import parse_command, parse_open
from services.store import keys
from services.store.record import Store

CONCURRENCY = (1, 8, 32)
LONG_AT = 8
"""Writers of the information-only run with a long body."""
PIPELINE = 100

Op = Callable[[str], Awaitable[None]]


async def drive(
    op: Op, stories: Sequence[str], writers: int, seconds: float
) -> tuple[int, float, list[float]]:
    """Run ``op(story)`` from ``writers`` tasks for ``seconds``, stories picked round-robin."""
    picks = itertools.count()
    latencies: list[float] = []
    clock = time.perf_counter
    deadline = clock() + seconds

    async def writer() -> None:
        while clock() < deadline:
            story = stories[next(picks) % len(stories)]
            began = clock()
            await op(story)
            latencies.append(clock() - began)

    start = clock()
    await asyncio.gather(*(writer() for _ in range(writers)))
    return len(latencies), clock() - start, latencies


class Bare:
    """The baseline append: versions kept in memory, one EVALSHA, a retry on a conflict."""

    def __init__(self, client: redis.Redis, payload: bytes, feed: bool) -> None:
        self.script = client.register_script(BARE_SCRIPT)
        self.payload = payload
        self.feed = feed
        self.versions: dict[str, int] = {}
        self.conflicts = 0

    async def __call__(self, story: str) -> None:
        version = self.versions.get(story, 0)
        names = [keys.events(story), keys.head(story)]
        if self.feed:
            names.append(keys.feed_of(story))
        while True:
            status, value = await self.script(
                keys=names, args=[version, version + 1, self.payload, story]
            )
            if status == b"ok":
                self.versions[story] = version + 1
                return
            self.conflicts += 1
            version = int(value)


async def metered(
    client: redis.Redis,
    run: Run,
    work: Awaitable[tuple[int, float, list[float]] | tuple[int, float]],
) -> None:
    """Add one round to ``run``, with the CPU this process and the server spent on it."""
    ours, server = time.process_time(), await valkey_cpu(client)
    count, seconds, *latencies = await work
    run.add_round(
        count,
        seconds,
        latencies[0] if latencies else (),
        cpu=time.process_time() - ours,
        server_cpu=await valkey_cpu(client) - server,
    )


async def xadd_sequential(
    client: redis.Redis, payload: bytes, seconds: float
) -> tuple[int, float, list[float]]:
    streams = [f"bench:xadd:{i}" for i in range(100)]

    async def op(stream: str) -> None:
        await client.xadd(stream, {"e": payload})

    return await drive(op, streams, 1, seconds)


async def xadd_pipelined(client: redis.Redis, payload: bytes, seconds: float) -> tuple[int, float]:
    streams = [f"bench:xadd-pipe:{i}" for i in range(100)]
    clock = time.perf_counter
    count = 0
    start = clock()
    deadline = start + seconds
    while clock() < deadline:
        async with client.pipeline(transaction=False) as pipe:
            for n in range(PIPELINE):
                pipe.xadd(streams[n], {"e": payload})
            await pipe.execute()
        count += PIPELINE
    return count, clock() - start


async def measure(url: str, options: Options) -> list[Check]:
    rounds, seconds = (1, 0.3) if options.quick else (8, 0.75)
    warm = 0.1 if options.quick else 0.5
    store = Store.from_url(url)
    client = redis.Redis.from_url(url)
    try:
        stories = story_ids("append")
        for story in stories:
            await store.append(story, parse_open({"story": story, "title": story}), actor=ACTOR)
        command = parse_command("entry.published", PUBLISH)
        payload = (await store.append(stories[0], command, actor=ACTOR)).body
        bare_stories = story_ids("bare")
        feed_stories = story_ids("barefeed")
        bare = Bare(client, payload, feed=False)
        bare_feed = Bare(client, payload, feed=True)

        async def append(story: str) -> None:
            await store.append(story, command, actor=ACTOR)

        long_command = parse_command("entry.published", LONG_PUBLISH)

        async def append_long(story: str) -> None:
            await store.append(story, long_command, actor=ACTOR)

        say(machine_line(options))
        say(
            f"{len(stories)} stories; envelope {len(payload)} bytes; {rounds} round(s) of "
            f"{seconds:g} s per configuration, interleaved; events/s is the median round"
        )
        runs: dict[tuple[str, int], Run] = {}
        for name, op, names in (
            ("Store.append", append, stories),
            ("bare script", bare, bare_stories),
            ("bare script + feed", bare_feed, feed_stories),
        ):
            await drive(op, names, 8, warm)  # connections, script cache, facts
            for c in CONCURRENCY:
                runs[(name, c)] = Run(name)
        xadd_seq, xadd_pipe = Run("XADD, one at a time"), Run(f"XADD, pipelined x{PIPELINE}")
        await xadd_sequential(client, payload, warm)
        long_run = Run("Store.append, 1.4 KB body with 12 links", note="information")

        for _ in range(rounds):
            for c in CONCURRENCY:
                for name, op, names in (
                    ("Store.append", append, stories),
                    ("bare script", bare, bare_stories),
                    ("bare script + feed", bare_feed, feed_stories),
                ):
                    await metered(client, runs[(name, c)], drive(op, names, c, seconds))
                    if c == 1 and name == "Store.append":  # the latency pair, back to back:
                        # fsync latency here drifts over seconds, so the two p50s of the
                        # target are taken next to each other in every round
                        await metered(client, xadd_seq, xadd_sequential(client, payload, seconds))
                if c == LONG_AT:
                    await metered(client, long_run, drive(append_long, stories, c, seconds))
            await metered(client, xadd_pipe, xadd_pipelined(client, payload, seconds))

        for c in CONCURRENCY:
            row = [runs[(n, c)] for n in ("Store.append", "bare script", "bare script + feed")]
            if c == LONG_AT:
                row.append(long_run)
            runs_table(f"{c} writer{'s' if c > 1 else ''}", row, against=row[1])
        runs_table("plain XADD of the same bytes", [xadd_seq, xadd_pipe], against=xadd_seq)
        if bare.conflicts or bare_feed.conflicts:
            say(f"bare script conflicts retried: {bare.conflicts + bare_feed.conflicts}")

        checks = [
            Check(
                APPEND_THROUGHPUT,
                f"Store.append events/s, {c} writer{'s' if c > 1 else ''}",
                runs[("Store.append", c)].rate,
                runs[("bare script", c)].rate,
                "events/s",
            )
            for c in CONCURRENCY
        ]
        checks.append(
            Check(
                APPEND_LATENCY,
                "Store.append p50, 1 writer",
                runs[("Store.append", 1)].ms(50),
                xadd_seq.ms(50),
                "ms",
            )
        )
        checks_table("targets", checks)
        return checks
    finally:
        await store.close()
        await client.aclose()


def main(argv: Sequence[str] | None = None) -> int:
    return on_own_valkey(__doc__.splitlines()[0], measure, argv)


if __name__ == "__main__":
    sys.exit(main())
