"""Memory per idle connection: the gateway's RSS with 5,000 subscribers, beside a bare websockets server.

One fresh embedded Valkey, one story (opened and given 10 entries through ``Store.append``, then
projected with ``Projector.project``, so a subscriber's snapshot is a realistic page). Then, one
server at a time, each its own process:
- ours: the gateway alone, ``python -m services gateway --redis URL --ws-port W``;
- the floor: ``bench/ws_floor.py``, a bare ``websockets`` server (the same library, compression
  off, the same frame limit and heartbeat) that keeps each subscribed connection in a set.

For each: warm up (100 connections subscribe and leave, so code paths and first allocations are
done), read ``VmRSS`` (``/proc/PID/status``), open 5,000 connections (``--quick`` 500) from a
separate client process and subscribe each to the story (each gets its snapshot), wait 2 s idle,
read ``VmRSS`` again: (after - before) / N is the memory an idle subscribed connection costs. 1 KB
here is 1,000 bytes.

Targets (bench/floors.py): ours at most 1.5x the bare server's per-connection delta, and under
30 KB a connection (Centrifugo's published figure).

    .venv/bin/python -m bench.memory [--quick] [--connections N]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.common import (
    ACTOR,
    PUBLISH,
    Check,
    Children,
    Options,
    checks_table,
    finish,
    fmt,
    free_port,
    machine_line,
    main_wrapper,
    parse_options,
    raise_fd_limit,
    rss_bytes,
    say,
    table,
    valkey,
    wait_tcp,
    workdir,
)
from bench.fanout import ENTRIES, STORY, Clients
from bench.floors import MEMORY_ABSOLUTE, MEMORY_RATIO
from events.decide import parse_command, parse_open
from services.projector.fold import Projector
from services.store.connection import connect
from services.store.record import Store

WARM = 100
SETTLE = 2.0
KB = 1_000


async def prepare(url: str) -> None:
    """The story, appended through the store and projected (no API or projector process)."""
    client = connect(url)
    store = Store(client)
    try:
        await store.append(
            STORY, parse_open({"story": STORY, "title": "Storm Oriane"}), actor=ACTOR
        )
        command = parse_command("entry.published", PUBLISH)
        for _ in range(ENTRIES):
            await store.append(STORY, command, actor=ACTOR)
        await Projector(client, store).project(await store.read(STORY))
    finally:
        await client.aclose()


async def footprint(port: int, pid: int, n: int) -> dict[str, float]:
    """RSS before and after ``n`` idle subscribed connections (and after they leave)."""
    clients = Clients(port, STORY)
    try:
        await clients.connect(WARM)
        await clients.call("close")
        await asyncio.sleep(SETTLE)
        before = rss_bytes(pid)
        joined = await clients.connect(n)
        await asyncio.sleep(SETTLE)
        after = rss_bytes(pid)
        await clients.call("close")
        await asyncio.sleep(SETTLE)
        left = rss_bytes(pid)
    finally:
        await clients.close()
    return {
        "before": before,
        "after": after,
        "left": left,
        "per": (after - before) / n,
        "join": joined["seconds"],
    }


def measure(url: str, options: Options, children: Children, tmp: Path) -> list[Check]:
    n = options.extra.connections or (500 if options.quick else 5_000)
    asyncio.run(prepare(url))
    gateway_port, floor_port = free_port(), free_port()
    servers = {
        "gateway (ours)": (
            [
                sys.executable,
                "-m",
                "services",
                "gateway",
                "--redis",
                url,
                "--ws-port",
                str(gateway_port),
            ],
            {},
            gateway_port,
        ),
        "bare websockets (floor)": (
            [sys.executable, "-m", "bench.ws_floor", str(floor_port)],
            {"BENCH_REDIS_URL": url},
            floor_port,
        ),
    }
    say(machine_line(options))
    say(
        f"{n:,} idle connections subscribed to one story ({ENTRIES} entries) from a separate process; "
        f"RSS read {SETTLE:g} s after they joined, after {WARM} warm-up connections came and went"
    )
    found = {}
    for name, (argv, env, port) in servers.items():
        log = tmp / f"{port}.log"
        proc = children.start(name, argv, env, log)
        wait_tcp(proc, port, log)
        found[name] = asyncio.run(footprint(port, proc.pid, n))
        children.stop(proc)
    ours, floor = found["gateway (ours)"], found["bare websockets (floor)"]
    table(
        f"RSS with {n:,} idle subscribed connections",
        ["server", "before MB", "after MB", "after they left MB", "per connection KB", "x floor"],
        [
            [
                name,
                fmt(r["before"] / 1e6, 1),
                fmt(r["after"] / 1e6, 1),
                fmt(r["left"] / 1e6, 1),
                fmt(r["per"] / KB, 1),
                fmt(r["per"] / floor["per"], 2),
            ]
            for name, r in found.items()
        ],
    )
    checks = [
        Check(
            MEMORY_RATIO,
            f"RSS per idle connection, {n:,} (x floor)",
            ours["per"] / KB,
            floor["per"] / KB,
            "KB",
        ),
        Check(
            MEMORY_ABSOLUTE,
            f"RSS per idle connection, {n:,} (absolute)",
            ours["per"] / KB,
            floor["per"] / KB,
            "KB",
        ),
    ]
    checks_table("targets", checks)
    return checks


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, help="idle connections (500 quick, 5,000 full)")
    options = parse_options(parser.description or "", argv, parser)

    def body() -> int:
        raise_fd_limit()
        with valkey(options.fsync) as url, workdir() as tmp, Children() as children:
            checks = measure(url, options, children, tmp)
        return finish(options, checks)

    return main_wrapper(body)


if __name__ == "__main__":
    sys.exit(main())
