"""POST /stories/{story}/events under load: ``dateline api``, ``dateline serve`` and the split
layout beside a bare Starlette handler and a bare EVALSHA loop.

One fresh embedded Valkey; on it, each in turn (never two under load at once), in interleaved
rounds:
- ``dateline api`` alone (``python -m services api --redis URL --http-port P`` with
  ``DATELINE_ADMIN_TOKEN``; 100 stories opened through the API first);
- the 20-line Starlette + orjson handler of ``bench/http_servers.py`` making one version-checked
  EVALSHA XADD, and, for information, a default FastAPI + pydantic handler making the same call
  (each served as the API is: uvicorn.Server awaited in the services' event loop, one worker);
- ``dateline serve --redis URL`` as users run it (the supervisor and its api, projector and
  gateway workers) and the split layout (``dateline api`` + ``projector`` + ``gateway``
  processes): each started for each of its rounds and stopped after it (two projectors in one
  consumer group would share each other's work), with one websocket subscriber on each of its 100
  stories (``bench.pipeline.Subscribers``), so the projector folds and the gateway sends a frame
  for every append while the API is loaded. Before each of their rounds the projectors' group is
  moved past what ``dateline api`` alone appended (``common.skip_backlog``), and the bench waits
  until the feeds are drained (no pending, no lag) after the warm-up and after the load: no round
  pays for another's projection;
- the bare loop of ``bench.append`` (``Bare`` + ``drive``): redis-py asyncio calls of the Starlette
  handler's script, as many in flight as the HTTP load has connections, in a process of its own.

The HTTP load generator is a separate process: ``wrk`` (``bench/post.lua``: POSTs with a bearer
token over 100 stories) when it is on PATH, otherwise an asyncio keep-alive HTTP/1.1 client
(``--client asyncio`` forces it). requests/s is the median round, p50/p99 the median of the
rounds'. CPU per request is the whole layout's (every process of it, from /proc), from the load's
start until the projection has caught up, and Valkey's (INFO cpu).

Targets (bench/floors.py): ``dateline api`` >= 0.7x the Starlette handler's requests/s;
``dateline serve`` >= 0.5x the bare EVALSHA loop and >= 0.8x the split layout.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import redis as redis_sync
import redis.asyncio as redis_async

from bench.append import Bare, drive
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
    layout_cpu,
    machine_line,
    main_wrapper,
    median,
    parse_options,
    percentile,
    say,
    skip_backlog,
    split_commands,
    story_ids,
    table,
    valkey,
    valkey_cpu,
    wait_drained,
    wait_http,
    wait_tcp,
    workdir,
)
from bench.floors import HTTP_APPEND, HTTP_SERVE_BARE, HTTP_SERVE_SPLIT
from bench.pipeline import Subscribers, start_serve
from services.run.serve import collect_less, run_loop
from services.store.embedded import die_with_parent

SUBSCRIBERS = 1
"""Websocket subscribers on each loaded story of serve and the split layout: the gateway sends
every append's change frame while the API is loaded, as it does for users."""

BODY = orjson.dumps({"type": "entry.published", "data": PUBLISH})
WRK_HINT = "wrk is not on PATH; install it for a faster load generator: apt-get install -y wrk"


@dataclass(slots=True)
class Server:
    name: str
    prefix: str
    port: int
    pid: int = 0
    kind: str = "process"
    """``process`` (started once), ``serve`` or ``split`` (started for each round), ``bare``."""
    opened: bool = False
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


# -- the bare EVALSHA loop -----------------------------------------------------------------------


async def _bare(
    url: str, prefix: str, connections: int, seconds: float, warm: float
) -> dict[str, float]:
    """``bench.append``'s bare loop (``Bare`` + ``drive``): the Starlette handler's script call
    (``BARE_SCRIPT`` on the story's stream and head, versions in memory), ``connections`` calls in
    flight, round-robin over the stories, with a record of the handler's size."""
    client = redis_async.Redis.from_url(url)
    record = orjson.dumps(
        {"story": f"{prefix}-000", "version": 1, "type": "entry.published", "data": PUBLISH}
    )
    call = Bare(client, record, feed=False)
    stories = story_ids(prefix)
    try:
        await drive(call, stories, connections, warm)
        theirs, ours = await valkey_cpu(client), time.process_time()
        count, elapsed, latencies = await drive(call, stories, connections, seconds)
        ours, theirs = time.process_time() - ours, await valkey_cpu(client) - theirs
    finally:
        await client.aclose()
    latencies.sort()
    done = max(count, 1)
    return {
        "requests": count,
        "rps": count / elapsed,
        "p50": percentile(latencies, 50) * 1000,
        "p99": percentile(latencies, 99) * 1000,
        "non2xx": 0,
        "errors": 0,
        "cpu_us": ours / done * 1e6,
        "valkey_us": theirs / done * 1e6,
    }


def _bare_process(
    url: str, prefix: str, connections: int, seconds: float, warm: float, out: Any
) -> None:  # pragma: no cover - child process
    die_with_parent()
    collect_less()
    out.send(run_loop(_bare(url, prefix, connections, seconds, warm)))


def bare_round(
    url: str, server: Server, connections: int, seconds: float, warm: float
) -> dict[str, float]:
    """One round of the bare loop in a fresh process of its own (the services' event loop and GC
    policy), warmed up first; its CPU (``cpu_us``) is the loop's own."""
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    proc = context.Process(
        target=_bare_process, args=(url, server.prefix, connections, seconds, warm, send)
    )
    proc.start()
    try:
        if not receive.poll(warm + seconds + 60):
            raise RuntimeError("the bare loop gave no result")
        result: dict[str, float] = receive.recv()
        return result
    finally:
        proc.join(5)
        if proc.is_alive():
            proc.kill()
            proc.join()


# -- the layouts: dateline serve, and api + projector + gateway ---------------------------------


def start_layout(
    children: Children, kind: str, url: str, tmp: Path
) -> tuple[int, int, list[subprocess.Popen[bytes]]]:
    """Ours as users run it: ``serve`` (the supervisor, waited until it says ``ready``) or the
    split layout's three processes; the HTTP and websocket ports and the processes."""
    if kind == "serve":
        http_port, ws_port, proc = start_serve(children, url, tmp)
        return http_port, ws_port, [proc]
    http_port, ws_port = free_port(), free_port()
    argvs = split_commands(url, http_port, ws_port)
    procs = {
        name: children.start(name, argv, {"DATELINE_ADMIN_TOKEN": TOKEN}, tmp / f"{name}.log")
        for name, argv in argvs.items()
    }
    wait_http(procs["api"], f"http://127.0.0.1:{http_port}/healthz", tmp / "api.log")
    wait_tcp(procs["gateway"], ws_port, tmp / "gateway.log")
    return http_port, ws_port, list(procs.values())


Load = Callable[[Server, int, float], dict[str, float]]


def layout_round(
    children: Children,
    store: redis_sync.Redis,
    server: Server,
    url: str,
    tmp: Path,
    load: Load,
    connections: int,
    seconds: float,
    warm: float,
) -> dict[str, float]:
    """One round of a layout, started for it and stopped after it (two projectors in one group
    would share each other's work; idle gateways would wake on each other's changes):

    skip the feeds' backlog (what ``dateline api`` alone appended) -> start -> open the stories
    (first round) -> drained -> a subscriber on every story -> warm-up -> drained -> the load ->
    drained again (timed: the projection's backlog when the load ended) -> stop. CPU per request
    is the whole layout's (every process, workers included) and Valkey's, from the load's start
    until the projection has caught up."""
    skip_backlog(store)
    http_port, ws_port, procs = start_layout(children, server.kind, url, tmp)
    subscribers: Subscribers | None = None
    try:
        server.port, server.pid = http_port, procs[0].pid
        if not server.opened:
            open_stories(server)
            server.opened = True
        wait_drained(store)
        subscribers = Subscribers(ws_port)
        subscribers.connect(story_ids(server.prefix), SUBSCRIBERS)
        warmed = load(server, connections, warm)
        wait_drained(store)
        subscribers.collect(int(warmed["requests"]) * SUBSCRIBERS, 5.0)  # the warm-up's frames
        pids = [proc.pid for proc in procs]
        ours, theirs = layout_cpu(pids), valkey_seconds(store)
        result = load(server, connections, seconds)
        result["drain_s"] = wait_drained(store)
        done = max(result["requests"], 1)
        result["cpu_us"] = (layout_cpu(pids) - ours) / done * 1e6
        result["valkey_us"] = (valkey_seconds(store) - theirs) / done * 1e6
        got = subscribers.collect(int(result["requests"]) * SUBSCRIBERS, 10.0)
        result["frames"] = sum(len(v) for v, _ in got["receipts"].values())
        return result
    finally:
        if subscribers is not None:
            subscribers.close()
        for proc in procs:
            children.stop(proc)


# -- the bench ----------------------------------------------------------------------------------


def open_stories(server: Server) -> None:
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        for story in story_ids(server.prefix):
            answer = http.post("/stories", json={"story": story, "title": story})
            if answer.status_code != 201:
                raise RuntimeError(f"opening {story}: {answer.status_code} {answer.text}")


def valkey_seconds(store: redis_sync.Redis) -> float:
    info = store.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


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
        Server("dateline serve", "serve", 0, kind="serve"),
        Server("api + projector + gateway", "split", 0, kind="split"),
        Server("bare EVALSHA loop", "bare", 0, kind="bare"),
    ]
    api, star, fast, serve, split, bare = servers
    with valkey(options.fsync) as url, workdir() as tmp, Children() as children:
        env = {"BENCH_REDIS_URL": url, "BENCH_TOKEN": TOKEN, "DATELINE_ADMIN_TOKEN": TOKEN}
        run_ = [sys.executable, "-m"]
        argvs = {
            "api": [*run_, "services", "api", "--redis", url, "--http-port", str(api.port)],
            "star": [*run_, "bench.http_servers", "starlette", str(star.port)],
            "fast": [*run_, "bench.http_servers", "fastapi", str(fast.port)],
        }
        for server in (api, star, fast):
            log = Path(tmp) / f"{server.prefix}.log"
            proc = children.start(server.name, argvs[server.prefix], env, log)
            server.pid = proc.pid
            wait_http(proc, f"{server.url}/healthz", log)
        open_stories(api)

        say(machine_line(options))
        say(
            f"load: {client}, {connections} connections, {rounds} round(s) of {seconds:g} s per "
            f"server, interleaved, after {warm:g} s of warm-up each; body {len(BODY)} bytes; "
            f"{STORIES} stories per server; serve and the split layout started for each of their "
            f"rounds, with {SUBSCRIBERS} websocket subscriber(s) on each story and the projector "
            f"drained before and after; the bare loop: {connections} EVALSHA calls in flight"
        )
        store = redis_sync.Redis.from_url(url)
        try:
            for server in (api, star, fast):
                load(server, connections, warm)
            for _ in range(rounds):
                for server in servers:
                    if server.kind == "bare":
                        result = bare_round(url, server, connections, seconds, warm)
                    elif server.kind in ("serve", "split"):
                        result = layout_round(
                            children, store, server, url, tmp, load, connections, seconds, warm
                        )
                    else:
                        ours, theirs = layout_cpu([server.pid]), valkey_seconds(store)
                        result = load(server, connections, seconds)
                        done = max(result["requests"], 1)
                        result["cpu_us"] = (layout_cpu([server.pid]) - ours) / done * 1e6
                        result["valkey_us"] = (valkey_seconds(store) - theirs) / done * 1e6
                    server.rounds.append(result)
        finally:
            store.close()

    def maybe(s: Server, key: str, digits: int) -> str:
        return fmt(s.median(key), digits) if key in s.rounds[0] else "-"

    rows = [
        [
            s.name,
            fmt(s.total("requests")),
            fmt(s.median("rps")),
            fmt(s.median("p50"), 2),
            fmt(s.median("p99"), 2),
            fmt(s.median("rps") / star.median("rps"), 2),
            fmt(s.median("rps") / bare.median("rps"), 2),
            fmt(s.median("cpu_us"), 1),
            fmt(s.median("valkey_us"), 1),
            maybe(s, "frames", 0),
            maybe(s, "drain_s", 2),
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
            "x bare",
            "CPU us/req",
            "Valkey us/req",
            "frames",
            "drain s",
            "non-2xx/errors",
        ],
        rows,
    )
    say(
        "CPU us/req: the server's processes (serve: the supervisor and its workers; split: api, "
        "projector and gateway; bare: the loop itself), from the load's start until the projector "
        "has drained; frames: change frames the subscribers got in a measured round (median; up to "
        "one per connection more than its requests: wrk does not count the requests in flight "
        "when it stops, the server still appends them); "
        "drain s: how long the projection took to catch up after the load ended"
    )
    for s in servers:
        if s.total("non2xx") or s.total("errors"):
            say(
                f"WARNING: {s.name} answered {s.total('non2xx')} non-2xx and had {s.total('errors')} errors: its rate is not an append rate"
            )
    checks = [
        Check(
            HTTP_APPEND, "dateline api requests/s", api.median("rps"), star.median("rps"), "req/s"
        ),
        Check(
            HTTP_SERVE_BARE,
            "dateline serve requests/s vs bare EVALSHA",
            serve.median("rps"),
            bare.median("rps"),
            "req/s",
        ),
        Check(
            HTTP_SERVE_SPLIT,
            "dateline serve requests/s vs split layout",
            serve.median("rps"),
            split.median("rps"),
            "req/s",
        ),
    ]
    checks_table("targets", checks)
    say(
        f"for information: FastAPI + pydantic at {fast.median('rps') / star.median('rps'):.2f}x Starlette"
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
