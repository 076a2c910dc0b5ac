"""End to end: from sending the HTTP append to each websocket client's receipt, beside the raw chain.

The same servers, clients and publishers as ``bench.fanout`` (one fresh embedded Valkey; ours as
``api`` + ``projector`` + ``gateway`` processes, or one ``serve`` with ``--layout serve``; the floor
of ``bench/ws_floor.py``; the clients in a separate process, each frame stamped with
``time.monotonic_ns()``, the clock every process shares on Linux). Events are paced, one in flight:
each append is sent ``2 ms`` after every client has the one before, so nothing queues behind it and
each number is one change's whole trip:
- ours: ``POST /stories/{story}/events`` sent -> 201 -> the projector folds it and writes the change
  -> the gateway's ``XREAD BLOCK`` wakes -> every subscriber's frame;
- the raw chain (the floor): ``XADD`` sent -> the floor's ``XREAD BLOCK`` wakes ->
  ``websockets.broadcast``.

For 1 client (1,000 events; ``--quick`` 200) and 1,000 clients (200 events; ``--quick`` 200
clients, 50 events): p50 and p99 over every (client, event) pair, and the split into the append's
own round trip (send -> 201) and what follows it. Then, for information, one more paced run of
ours with 1 client and a spy in this process (``XREAD BLOCK`` on the story's feed and on its
partition's changes stream, each entry stamped on arrival) splits the trip into its hops: the
append until its feed entry is readable, the projector until its change is readable, the gateway
until the client has the frame.

Targets (bench/floors.py): 1 client p50 under 2 ms and p99 under 5 ms; 1,000 clients p99 under
25 ms (absolute; the raw chain is shown beside them).

    .venv/bin/python -m bench.e2e_latency [--quick] [--fsync everysec] [--layout split|serve]
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench.common import (
    Check,
    Children,
    Options,
    checks_table,
    fmt,
    machine_line,
    percentile,
    process_cpu,
    say,
    table,
)
from bench.fanout import GAP, STORY, Phase, layout_main, measure_server, ms, setup_servers
from bench.floors import E2E_MANY_P99, E2E_ONE_P50, E2E_ONE_P99
from services.realtime.frames import changes_of
from services.store import keys
from services.store.connection import connect


async def spy(url: str, story: str, seen: dict[bytes, dict[int, int]]) -> None:
    """Stamp when each version of ``story`` becomes readable on its feed and its changes stream."""
    client = connect(url)
    streams = {keys.feed_of(story): "$", keys.partition_changes(keys.partition(story)): "$"}
    try:
        while True:
            replies = await client.xread(streams, block=1_000)
            now = time.monotonic_ns()
            for stream, entries in replies:
                name = stream.decode()
                for entry_id, fields in entries:
                    streams[name] = entry_id
                    if fields[b"s"] != story.encode():
                        continue
                    versions = (
                        [int(fields[b"v"])]
                        if b"__data__" in fields  # a feed entry: one envelope
                        else [v for v, _ in changes_of(fields)]
                    )
                    for version in versions:
                        seen.setdefault(stream, {})[version] = now
    finally:
        await client.aclose()


def hops(phase: Phase, seen: dict[bytes, dict[int, int]], story: str) -> list[list[str]]:
    """Per hop: p50 and p99 (ms) over the phase's events that every stamp saw."""
    feed = seen.get(keys.feed_of(story).encode(), {})
    change = seen.get(keys.partition_changes(keys.partition(story)).encode(), {})
    split: dict[str, list[float]] = {"append": [], "projector": [], "gateway": [], "whole": []}
    for (version, sent, _), got in zip(phase.marks, phase.receipts, strict=True):
        if version in feed and version in change and got:
            split["append"].append((feed[version] - sent) * ms)
            split["projector"].append((change[version] - feed[version]) * ms)
            split["gateway"].append((got[0] - change[version]) * ms)
            split["whole"].append((got[0] - sent) * ms)
    names = {
        "append": "send -> feed entry readable (HTTP, decide, seal, append.lua, fsync)",
        "projector": "feed -> change readable (projector wakes, folds, project.lua, fsync)",
        "gateway": "change -> client has the frame (gateway wakes, sends)",
        "whole": "send -> client has the frame",
    }
    return [
        [
            names[k],
            fmt(len(v)),
            fmt(percentile(sorted(v), 50), 3),
            fmt(percentile(sorted(v), 99), 3),
        ]
        for k, v in split.items()
    ]


def row(phase: Phase) -> list[str]:
    e2e = phase.end_to_end()
    append = sorted((acked - sent) * ms for _, sent, acked in phase.marks)
    after = sorted(
        (t - acked) * ms
        for (_, _, acked), got in zip(phase.marks, phase.receipts, strict=True)
        for t in got
    )
    return [
        phase.server,
        fmt(phase.clients),
        fmt(len(phase.marks)),
        fmt(percentile(e2e, 50), 3),
        fmt(percentile(e2e, 99), 3),
        fmt(e2e[-1] if e2e else float("nan"), 3),
        fmt(percentile(append, 50), 3),
        fmt(percentile(after, 50), 3),
        fmt(percentile(after, 99), 3),
        fmt(phase.cpu_us(), 1),
    ]


async def measure(url: str, options: Options, children: Children, tmp: Path) -> list[Check]:
    plan = ((1, 200), (200, 50)) if options.quick else ((1, 1_000), (1_000, 200))
    layout = options.extra.layout
    setup = await setup_servers(url, children, tmp, layout)
    say(machine_line(options))
    say(
        f"ours: {layout} layout ({', '.join(setup.ours.pids)}); raw chain: XADD -> bench/ws_floor.py "
        f"(XREAD BLOCK -> websockets.broadcast); change frame {len(setup.template)} bytes; paced: one "
        f"event in flight, the next sent {GAP * 1000:g} ms after every client has it"
    )
    results: dict[tuple[str, int], Phase] = {}
    for n, events in plan:
        for server in ("ours", "floor"):
            phases = await measure_server(setup, server, n, events, ("paced",))
            results[(server, n)] = phases["paced"]
    table(
        "from sending the append to each client's receipt (ms)",
        [
            "server",
            "clients",
            "events",
            "p50",
            "p99",
            "max",
            "send->201 p50",
            "201->receipt p50",
            "201->receipt p99",
            "server us/frame",
        ],
        [row(results[(server, n)]) for n, _ in plan for server in ("ours", "floor")],
    )
    say(
        "p50/p99/max over every (client, event) pair; send->201: the append's own round trip (the "
        "floor: XADD's); 201->receipt: the rest of the trip (negative when the frame beats the 201)"
    )
    seen: dict[bytes, dict[int, int]] = {}
    watcher = asyncio.get_running_loop().create_task(spy(url, STORY, seen))
    await asyncio.sleep(0.1)
    cpu = {name: process_cpu(pid) for name, pid in setup.ours.pids.items()}
    try:
        traced = (await measure_server(setup, "ours", 1, plan[0][1], ("paced",)))["paced"]
        events = max(len(traced.marks), 1)
        cpu = {
            name: (process_cpu(pid) - cpu[name]) / events * 1e3
            for name, pid in setup.ours.pids.items()
        }
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    table(
        "for information: the hops of ours, 1 client (ms; a spy XREADs the streams between)",
        ["hop", "events", "p50", "p99"],
        hops(traced, seen, STORY),
    )
    say(
        "CPU per event in that run (ms, from /proc; includes idle polling): "
        + ", ".join(f"{name} {fmt(value, 3)}" for name, value in cpu.items())
    )
    one, many = plan[0][0], plan[1][0]

    def e2e(server: str, n: int, q: float) -> float:
        return percentile(results[(server, n)].end_to_end(), q)

    checks = [
        Check(E2E_ONE_P50, f"p50, {one} client", e2e("ours", one, 50), e2e("floor", one, 50), "ms"),
        Check(E2E_ONE_P99, f"p99, {one} client", e2e("ours", one, 99), e2e("floor", one, 99), "ms"),
        Check(
            E2E_MANY_P99,
            f"p99, {many:,} clients",
            e2e("ours", many, 99),
            e2e("floor", many, 99),
            "ms",
        ),
    ]
    checks_table("targets", checks)
    return checks


def main(argv: Sequence[str] | None = None) -> int:
    return layout_main(__doc__.splitlines()[0], measure, argv)


if __name__ == "__main__":
    sys.exit(main())
