"""End to end: from sending the HTTP append to each websocket client's receipt, beside the raw chain.

The same servers, clients and publishers as ``bench.fanout``, for each layout of ours in turn, each
on a fresh embedded Valkey beside the floor: ``serve`` (one ``python -m services serve --redis URL``:
the supervisor and its api, projector and gateway workers, whose pids the bench finds under it)
and ``split`` (``api`` + ``projector`` + ``gateway`` processes); ``--layout serve|split`` runs one,
the default both, their rows side by side. The floor is ``bench/ws_floor.py``; the clients in a separate process, each frame stamped with
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

Targets (bench/floors.py), for each layout: 1 client p50 under 2 ms and p99 under 5 ms; 1,000
clients p99 under 25 ms (absolute; the raw chain of the same run is shown beside them).

    .venv/bin/python -m bench.e2e_latency [--quick] [--fsync everysec] [--layout both|serve|split]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import (
    Check,
    Children,
    Options,
    checks_table,
    descendants,
    finish,
    fmt,
    machine_line,
    main_wrapper,
    parse_options,
    percentile,
    process_cpu,
    raise_fd_limit,
    say,
    table,
    valkey,
    workdir,
)
from bench.fanout import GAP, STORY, Phase, measure_server, ms, setup_servers
from bench.floors import E2E_MANY_P99, E2E_ONE_P50, E2E_ONE_P99
from services.realtime.frames import changes_of
from services.store import keys
from services.store.connection import connect


async def spy(url: str, story: str, seen: dict[bytes, dict[int, int]]) -> None:
    """Stamp when each version of ``story`` becomes readable on its feed and its changes stream."""
    client: Any = connect(url)  # replies as bytes; redis-py's stubs type them as str too
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


def row(phase: Phase, name: str) -> list[str]:
    e2e = phase.end_to_end()
    append = sorted((acked - sent) * ms for _, sent, acked in phase.marks)
    after = sorted(
        (t - acked) * ms
        for (_, _, acked), got in zip(phase.marks, phase.receipts, strict=True)
        for t in got
    )
    return [
        name,
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


WORKERS = {"dl-api": "api", "dl-projector": "projector", "dl-gateway": "gateway"}
"""``serve``'s workers as /proc names them (``services.run.supervisor`` sets them)."""


def serve_workers(supervisor: int) -> dict[str, int]:
    """The api, projector and gateway workers of one ``dateline serve`` (its supervisor's pid):
    what the serve layout's CPU is read from; fails if serve is not a supervisor of the three."""
    found = {WORKERS[name]: pid for pid, name in descendants(supervisor).items() if name in WORKERS}
    if set(found) != set(WORKERS.values()):
        raise RuntimeError(f"dateline serve (pid {supervisor}) runs workers {found}, not the three")
    return found


Results = dict[tuple[str, int], Phase]


async def measure(
    url: str, options: Options, children: Children, tmp: Path, layout: str
) -> tuple[Results, list[tuple[int, int]]]:
    """One layout of ours and the raw chain on one fresh Valkey: every phase, by (server, N)."""
    plan = [(1, 200), (200, 50)] if options.quick else [(1, 1_000), (1_000, 200)]
    setup = await setup_servers(url, children, tmp, layout)
    described = ", ".join(setup.ours.pids)
    if layout == "serve":
        supervisor = setup.ours.pids["serve"]
        setup.ours.pids = serve_workers(supervisor)
        setup.ours.fanout_pid = setup.ours.pids["gateway"]
        described = f"the supervisor (pid {supervisor}) and its workers " + ", ".join(
            f"{name} (pid {pid})" for name, pid in setup.ours.pids.items()
        )
    say(f"\n-- layout {layout}: {described}")
    results: Results = {}
    for n, events in plan:
        for server in ("ours", "floor"):
            phases = await measure_server(setup, server, n, events, ("paced",))
            results[(server, n)] = phases["paced"]
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
        f"for information: the hops of ours ({layout}), 1 client (ms; a spy XREADs the streams between)",
        ["hop", "events", "p50", "p99"],
        hops(traced, seen, STORY),
    )
    say(
        "CPU per event in that run (ms, from /proc; includes idle polling): "
        + ", ".join(f"{name} {fmt(value, 3)}" for name, value in cpu.items())
    )
    return results, plan


def report(
    options: Options, measured: dict[str, tuple[Results, list[tuple[int, int]]]]
) -> list[Check]:
    """Every layout's rows side by side, each beside the raw chain of its own run; the targets
    for each layout."""
    say("")
    say(machine_line(options))
    say(
        f"ours: {' and '.join(measured)} layout(s), each on a fresh Valkey beside the raw chain: XADD "
        f"-> bench/ws_floor.py (XREAD BLOCK -> websockets.broadcast); paced: one event in flight, "
        f"the next sent {GAP * 1000:g} ms after every client has it"
    )
    rows = []
    for layout, (results, plan) in measured.items():
        for n, _ in plan:
            rows.append(row(results[("ours", n)], f"ours ({layout})"))
            rows.append(row(results[("floor", n)], f"raw chain ({layout}'s run)"))
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
        rows,
    )
    say(
        "p50/p99/max over every (client, event) pair; send->201: the append's own round trip (the "
        "floor: XADD's); 201->receipt: the rest of the trip (negative when the frame beats the 201); "
        "server us/frame: the gateway's CPU (serve: its gateway worker)"
    )
    checks = []
    for layout, (results, plan) in measured.items():
        one, many = plan[0][0], plan[1][0]

        def e2e(server: str, n: int, q: float, results: Results = results) -> float:
            return percentile(results[(server, n)].end_to_end(), q)

        checks += [
            Check(
                E2E_ONE_P50,
                f"{layout}: p50, {one} client",
                e2e("ours", one, 50),
                e2e("floor", one, 50),
                "ms",
            ),
            Check(
                E2E_ONE_P99,
                f"{layout}: p99, {one} client",
                e2e("ours", one, 99),
                e2e("floor", one, 99),
                "ms",
            ),
            Check(
                E2E_MANY_P99,
                f"{layout}: p99, {many:,} clients",
                e2e("ours", many, 99),
                e2e("floor", many, 99),
                "ms",
            ),
        ]
    checks_table("targets", checks)
    return checks


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--layout",
        choices=("both", "serve", "split"),
        default="both",
        help="ours as one dateline serve (supervisor + workers), as api + projector + gateway "
        "processes, or both, one after the other (default)",
    )
    options = parse_options(parser.description or "", argv, parser)
    layouts = ("serve", "split") if options.extra.layout == "both" else (options.extra.layout,)

    def body() -> int:
        raise_fd_limit()
        measured = {}
        for layout in layouts:
            with valkey(options.fsync) as url, workdir() as tmp, Children() as children:
                measured[layout] = asyncio.run(measure(url, options, children, tmp, layout))
        return finish(options, report(options, measured))

    return main_wrapper(body)


if __name__ == "__main__":
    sys.exit(main())
