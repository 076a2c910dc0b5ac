"""POST /stories/{story}/events under load: ``dateline api`` beside a bare Starlette handler.

One fresh embedded Valkey; three servers on it, each its own process, started the same way
(uvicorn.Server awaited in ``asyncio.run``, one worker): ``dateline api`` (as ``python -m services
api --redis URL --http-port P`` with ``DATELINE_ADMIN_TOKEN``; 100 stories opened through the API
first), the 20-line Starlette + orjson handler of ``bench/http_servers.py`` making one
version-checked EVALSHA XADD, and, for information, a default FastAPI + pydantic handler making the
same call. The load generator is a separate process: ``wrk`` (``bench/post.lua``: POSTs with a
bearer token over 100 stories) when it is on PATH, otherwise an asyncio keep-alive HTTP/1.1 client
(``--client asyncio`` forces it). The servers take turns (never two under load at once), in
interleaved rounds; requests/s is the median round, p50/p99 the median of the rounds'.

Target (bench/floors.py): ours >= 0.7x the Starlette handler's requests/s.

    .venv/bin/python -m bench.http_append [--quick] [--fsync everysec] [--connections N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import redis as redis_sync

from bench.common import (
    PUBLISH,
    ROOT,
    STORIES,
    TOKEN,
    Check,
    Children,
    Options,
    checks_table,
    finish,
    fmt,
    free_port,
    machine_line,
    main_wrapper,
    median,
    parse_options,
    percentile,
    process_cpu,
    say,
    story_ids,
    table,
    valkey,
    wait_http,
    workdir,
)
from bench.floors import HTTP_APPEND

BODY = orjson.dumps({"type": "entry.published", "data": PUBLISH})
WRK_HINT = "wrk is not on PATH; install it for a faster load generator: apt-get install -y wrk"


@dataclass(slots=True)
class Server:
    name: str
    prefix: str
    port: int
    pid: int = 0
    rounds: list[dict[str, float]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def median(self, key: str) -> float:
        return median([r[key] for r in self.rounds])

    def total(self, key: str) -> int:
        return int(sum(r[key] for r in self.rounds))


# -- load generators ----------------------------------------------------------------------------


def wrk_load(server: Server, connections: int, seconds: float) -> dict[str, float]:
    """One wrk run (one thread: the machine's other core runs the server)."""
    env = {
        **os.environ,
        "BENCH_TOKEN": TOKEN,
        "BENCH_PREFIX": server.prefix,
        "BENCH_STORIES": str(STORIES),
        "BENCH_BODY": BODY.decode(),
    }
    argv = [
        "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
        "-s", str(ROOT / "bench" / "post.lua"), server.url,
    ]  # fmt: skip
    done = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    for line in done.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            raw = json.loads(line.removeprefix("BENCH_JSON "))
            return {
                "requests": raw["requests"],
                "rps": raw["requests"] / (raw["duration_us"] / 1e6),
                "p50": raw["p50_us"] / 1000,
                "p99": raw["p99_us"] / 1000,
                "non2xx": raw["non2xx"],
                "errors": raw["errors"],
            }
    raise RuntimeError(f"wrk gave no result:\n{done.stdout}\n{done.stderr}")


def _requests(port: int, prefix: str) -> list[bytes]:
    head = (
        "POST /stories/{story}/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        "Content-Length: {length}\r\n\r\n"
    )
    return [
        head.format(story=s, port=port, token=TOKEN, length=len(BODY)).encode() + BODY
        for s in story_ids(prefix)
    ]


async def _client(port: int, prefix: str, connections: int, seconds: float) -> dict[str, float]:
    requests = _requests(port, prefix)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors = 0
    picks = iter(range(10**12))
    clock = time.perf_counter
    deadline = clock() + seconds

    async def connection() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while clock() < deadline:
                request = requests[next(picks) % len(requests)]
                began = clock()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                latencies.append(clock() - began)
                statuses[int(head[9:12])] += 1
        except (OSError, asyncio.IncompleteReadError):
            errors += 1
        finally:
            writer.close()

    start = clock()
    await asyncio.gather(*(connection() for _ in range(connections)))
    elapsed = clock() - start
    latencies.sort()
    return {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50": percentile(latencies, 50) * 1000,
        "p99": percentile(latencies, 99) * 1000,
        "non2xx": sum(n for s, n in statuses.items() if not 200 <= s < 400),
        "errors": errors,
    }


def _client_process(port: int, prefix: str, connections: int, seconds: float, out: Any) -> None:
    try:
        import uvloop

        result = uvloop.run(_client(port, prefix, connections, seconds))
    except ImportError:
        result = asyncio.run(_client(port, prefix, connections, seconds))
    out.send(result)


def asyncio_load(server: Server, connections: int, seconds: float) -> dict[str, float]:
    """The fallback load generator: an asyncio keep-alive client in a process of its own."""
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    proc = context.Process(
        target=_client_process, args=(server.port, server.prefix, connections, seconds, send)
    )
    proc.start()
    try:
        if not receive.poll(seconds + 60):
            raise RuntimeError("the load generator gave no result")
        result: dict[str, float] = receive.recv()
        return result
    finally:
        proc.join(5)
        if proc.is_alive():
            proc.kill()
            proc.join()


# -- the bench ----------------------------------------------------------------------------------


def open_stories(server: Server) -> None:
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        for story in story_ids(server.prefix):
            answer = http.post("/stories", json={"story": story, "title": story})
            if answer.status_code != 201:
                raise RuntimeError(f"opening {story}: {answer.status_code} {answer.text}")


def run(options: Options) -> list[Check]:
    quick = options.quick
    rounds, seconds, warm = (1, 1.0, 1.0) if quick else (3, 5.0, 2.0)
    connections = options.extra.connections or (16 if quick else 32)
    client = options.extra.client
    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "asyncio"
        if client == "asyncio":
            say(WRK_HINT)
    elif client == "wrk" and not shutil.which("wrk"):
        raise SystemExit(WRK_HINT)
    load = wrk_load if client == "wrk" else asyncio_load

    servers = [
        Server("dateline api", "api", free_port()),
        Server("Starlette + orjson", "star", free_port()),
        Server("FastAPI + pydantic", "fast", free_port()),
    ]
    with valkey(options.fsync) as url, workdir() as tmp, Children() as children:
        env = {"BENCH_REDIS_URL": url, "BENCH_TOKEN": TOKEN, "DATELINE_ADMIN_TOKEN": TOKEN}
        argvs = [
            [
                sys.executable,
                "-m",
                "services",
                "api",
                "--redis",
                url,
                "--http-port",
                str(servers[0].port),
            ],
            [sys.executable, "-m", "bench.http_servers", "starlette", str(servers[1].port)],
            [sys.executable, "-m", "bench.http_servers", "fastapi", str(servers[2].port)],
        ]
        for server, argv in zip(servers, argvs, strict=True):
            log = Path(tmp) / f"{server.prefix}.log"
            proc = children.start(server.name, argv, env, log)
            server.pid = proc.pid
            wait_http(proc, f"{server.url}/healthz", log)
        open_stories(servers[0])

        say(machine_line(options))
        say(
            f"load: {client}, {connections} connections, {rounds} round(s) of {seconds:g} s per "
            f"server, interleaved, after {warm:g} s of warm-up each; body {len(BODY)} bytes; "
            f"{STORIES} stories per server"
        )
        store = redis_sync.Redis.from_url(url)

        def valkey_seconds() -> float:
            info = store.info("cpu")
            return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

        for server in servers:
            load(server, connections, warm)
        for _ in range(rounds):
            for server in servers:
                ours, theirs = process_cpu(server.pid), valkey_seconds()
                result = load(server, connections, seconds)
                done = max(result["requests"], 1)
                result["cpu_us"] = (process_cpu(server.pid) - ours) / done * 1e6
                result["valkey_us"] = (valkey_seconds() - theirs) / done * 1e6
                server.rounds.append(result)
        store.close()

    base = servers[1]
    rows = [
        [
            s.name,
            fmt(s.total("requests")),
            fmt(s.median("rps")),
            fmt(s.median("p50"), 2),
            fmt(s.median("p99"), 2),
            fmt(s.median("rps") / base.median("rps"), 2),
            fmt(s.median("cpu_us"), 1),
            fmt(s.median("valkey_us"), 1),
            f"{s.total('non2xx')}/{s.total('errors')}",
        ]
        for s in servers
    ]
    table(
        f"POST /stories/{{story}}/events, {connections} connections",
        [
            "server",
            "requests",
            "requests/s",
            "p50 ms",
            "p99 ms",
            "x Starlette",
            "server CPU us/req",
            "Valkey CPU us/req",
            "non-2xx/errors",
        ],
        rows,
    )
    for s in servers:
        if s.total("non2xx") or s.total("errors"):
            say(
                f"WARNING: {s.name} answered {s.total('non2xx')} non-2xx and had {s.total('errors')} errors: its rate is not an append rate"
            )
    checks = [
        Check(
            HTTP_APPEND,
            "dateline api requests/s",
            servers[0].median("rps"),
            base.median("rps"),
            "req/s",
        ),
    ]
    checks_table("targets", checks)
    say(
        f"for information: FastAPI + pydantic at {servers[2].median('rps') / base.median('rps'):.2f}x Starlette"
    )
    return checks


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--connections", type=int, help="keep-alive connections (16 quick, 32 full)"
    )
    parser.add_argument(
        "--client", choices=("auto", "wrk", "asyncio"), default="auto", help="the load generator"
    )
    options = parse_options(parser.description or "", argv, parser)
    return main_wrapper(lambda: finish(options, run(options)))


if __name__ == "__main__":
    sys.exit(main())
