"""Fan-out: N websocket clients of one story, 200 appends, through the gateway and through the floor.

One fresh embedded Valkey; on it, ours: ``python -m services api``, ``projector`` and ``gateway``
each its own process with ``--redis URL`` (``--layout serve``: one ``python -m services serve --redis
URL``, a supervisor whose api, projector and gateway workers the bench finds under it by name, as
bench.e2e_latency does: the gateway's CPU and RSS are its ``dl-gateway`` worker's), with
``DATELINE_ADMIN_TOKEN``; beside it the floor of ``bench/ws_floor.py``: a minimal
``websockets.broadcast`` server fed by ``XREAD BLOCK`` on one stream. One story is opened through the API with 10 entries; the floor's payloads are copies of the
projector's own change frame of an ``entry.published`` (same bytes, version renumbered).

The clients run in processes of their own (uvloop when installed), ceil(N / 8,000) of them, N
shared evenly: N lean websocket connections in all (a hand-written client: handshake, one masked
subscribe frame, frame headers parsed in place, no compression; a ``websockets`` client would cost
more CPU per frame than the servers under test spend, and share their core), each subscribed to
the story. Each client process raises its open-files limit to the hard one and connects from a
loopback source address of its own (127.0.0.2, 127.0.0.3, ...), so no process runs out of files
and no source address out of ephemeral ports. Every frame's receipt is stamped with
``time.monotonic_ns()`` (CLOCK_MONOTONIC, the same clock in every process on Linux) and sent back
at the end; an event is everyone's when every process says all its clients have it. The
publisher is this process: raw keep-alive HTTP/1.1 POSTs to ours, plain XADDs to the floor, each
stamped when sent and when its 201 (or XADD reply) arrives.

Before the first N, 100 connections subscribe to each server and leave, and its RSS (``VmRSS``) is
read: the baseline. For each N (``--clients N[,M...]``, ascending; default 1,000 and 5,000 clients,
``--quick`` 200 and 1,000), ours then the floor: N connect and subscribe, and 2 s after the last
snapshot the server's RSS is read again: (that - baseline) / N is its memory per connection; then
- *burst*: 200 events, each sent as soon as the previous 201 came back (no pause): frames/s =
  N x 200 / (first send -> last receipt by any client); the time from each 201 to its last client
  is shown for information (it includes the queue the burst builds);
- *paced*: 200 events, one in flight: the next is sent 2 ms after every client has the previous
  one; the time from each 201 to the last client's receipt (p50, p99) is the fan-out latency.

Targets (bench/floors.py): ours >= 0.9x the floor's frames/s; paced p99 from the 201 to the last of
5,000 clients under 100 ms (the check is read at the largest N). N may be at most the hard
RLIMIT_NOFILE minus 200: one gateway process holds every connection, and a larger N is refused
before anything starts, with the machine's limit.

    .venv/bin/python -m bench.fanout [--quick] [--fsync everysec] [--layout split|serve]
                                     [--clients N[,M...]]
"""

from __future__ import annotations

import argparse
import array
import asyncio
import base64
import contextlib
import multiprocessing
import os
import resource
import socket
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.common import (
    PUBLISH,
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
    parse_options,
    percentile,
    process_cpu,
    raise_fd_limit,
    rss_bytes,
    say,
    split_commands,
    table,
    valkey,
    wait_http,
    wait_tcp,
    workdir,
)
from bench.floors import FANOUT_LAST, FANOUT_RATE
from bench.ws_floor import STREAM, floor_frames
from services.realtime.frames import changes_of
from services.store import keys
from services.store.connection import connect
from services.store.embedded import die_with_parent

STORY = "bench-fanout"
ENTRIES = 10
"""Entries the story has before the clients subscribe (their snapshot is a realistic page)."""
PARALLEL_CONNECTS = 64
"""Handshakes in flight at once (the servers listen with a backlog of 100)."""
GAP = 0.002
"""Seconds between a paced event's last receipt and the next append."""
PER_PROCESS = 8_000
"""Connections a client process holds at most: N clients take ceil(N / PER_PROCESS) processes,
each with its own open-files limit and, on two cores, a share of the receiving."""
FD_MARGIN = 200
"""Open files a server process keeps for itself beside its clients (its store connections,
listening sockets, logs, imports): N may be at most the hard RLIMIT_NOFILE minus this."""
WARM = 100
"""Connections that subscribe and leave before a server's baseline RSS is read (first code paths
and allocations done), as bench.memory does."""
SETTLE = 2.0
"""Seconds after the last client subscribed before the server's RSS is read."""
KB = 1_000
BIND_ADDRESS_NO_PORT = int(getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24))
"""Linux's IP_BIND_ADDRESS_NO_PORT (``socket`` names it from Python 3.12)."""
ms = 1e-6  # nanoseconds to milliseconds

# -- the clients: their own processes, N lean websocket connections in all --------------------

CHANGE = b'{"type":"change"'
SNAPSHOT = b'{"type":"snapshot"'
VERSION = b'"version":'


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked client-to-server frame (RFC 6455 5.3)."""
    mask, n = os.urandom(4), len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 1 << 16:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    stream = (mask * (n // 4 + 1))[:n]
    body = (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")
    return head + mask + (body if n else b"")


class Lean(asyncio.Protocol):
    """One client connection: upgrade, subscribe, then stamp each change frame as it arrives."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.open = False
        self.last = 0
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a Transport, as asyncio hands it
        self.transport.write(self.hub.upgrade)  # type: ignore[union-attr]  # set in connection_made

    def connection_lost(self, exc: Exception | None) -> None:
        self.hub.lost += 1
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"closed before its snapshot: {exc}"))

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        buffer = self.buffer + data if self.buffer else data
        if not self.open:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = buffer
                return
            if not buffer.startswith(b"HTTP/1.1 101"):
                self.ready.set_exception(ConnectionError(buffer[:end].decode(errors="replace")))
                self.transport.close()  # type: ignore[union-attr]  # set in connection_made
                return
            self.open = True
            buffer = buffer[end + 4 :]
            self.transport.write(self.hub.subscribe)  # type: ignore[union-attr]  # set in connection_made
        pos, size = 0, len(buffer)
        while size - pos >= 2:
            length, start = buffer[pos + 1] & 0x7F, pos + 2
            if length == 126:
                if size - pos < 4:
                    break
                length, start = int.from_bytes(buffer[pos + 2 : pos + 4], "big"), pos + 4
            elif length == 127:
                if size - pos < 10:
                    break
                length, start = int.from_bytes(buffer[pos + 2 : pos + 10], "big"), pos + 10
            end = start + length
            if end > size:
                break
            opcode = buffer[pos] & 0x0F
            if opcode == 1:
                if buffer.startswith(CHANGE, start):
                    at = buffer.find(VERSION, start, end) + len(VERSION)
                    version = int(buffer[at : buffer.find(b",", at, end)])
                    if self.last and version != self.last + 1:
                        self.hub.gaps += 1
                    self.last = version
                    self.hub.received(version, now)
                elif buffer.startswith(SNAPSHOT, start):
                    if not self.ready.done():
                        self.ready.set_result(None)
                else:
                    self.hub.errors[bytes(buffer[start:end][:200])] += 1
            elif opcode == 9:  # ping: pong with the same payload
                self.transport.write(client_frame(10, buffer[start:end]))  # type: ignore[union-attr]  # set in connection_made
            elif opcode == 8:
                code = int.from_bytes(buffer[start : start + 2], "big") if length >= 2 else 1005
                self.hub.closes[code] += 1
                self.transport.close()  # type: ignore[union-attr]  # set in connection_made
            pos = end
        self.buffer = buffer[pos:] if pos < size else b""


class Hub:
    """One client process's connections and the receipt times of the versions it expects."""

    def __init__(self, port: int, story: str, pipe: Any, source: str | None = None) -> None:
        key = base64.b64encode(os.urandom(16)).decode()
        self.upgrade = (
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        self.subscribe = client_frame(1, orjson.dumps({"op": "subscribe", "story": story}))
        self.port = port
        self.source = source
        self.pipe = pipe
        self.connections: list[Lean] = []
        self.first, self.times, self.notify = 0, list[list[int]](), False
        self.stray = self.gaps = self.lost = 0
        self.errors: Counter[bytes] = Counter()
        self.closes: Counter[int] = Counter()

    async def dial(self) -> Lean:
        """One connection to the server, from ``source`` when set.

        A source address of its own (any of 127/8 routes to ``lo`` on Linux) gives each client
        process its own ~28k ephemeral ports towards the server's one address and port, however
        many processes and sizes came before (closed connections wait in TIME_WAIT); with
        ``IP_BIND_ADDRESS_NO_PORT`` the port is picked at connect time, by the whole 4-tuple.
        """
        loop = asyncio.get_running_loop()
        if self.source is None:
            _, lean = await loop.create_connection(lambda: Lean(self), "127.0.0.1", self.port)
            return lean
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.IPPROTO_IP, BIND_ADDRESS_NO_PORT, 1)
            sock.bind((self.source, 0))
            sock.setblocking(False)
            await loop.sock_connect(sock, ("127.0.0.1", self.port))
        except BaseException:
            sock.close()
            raise
        _, lean = await loop.create_connection(lambda: Lean(self), sock=sock)
        return lean

    async def connect(self, n: int, parallel: int = PARALLEL_CONNECTS) -> dict[str, Any]:
        gate = asyncio.Semaphore(parallel)
        failures: Counter[str] = Counter()

        async def one() -> None:
            async with gate:
                try:
                    lean = await self.dial()
                    await asyncio.wait_for(lean.ready, 60)
                    self.connections.append(lean)
                except (OSError, TimeoutError) as error:
                    failures[str(error)[:120]] += 1

        began = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(n)))
        return {
            "opened": len(self.connections),
            "seconds": time.perf_counter() - began,
            "failures": dict(failures),
        }

    def expect(self, first: int, count: int, notify: bool) -> None:
        self.first, self.times, self.notify = first, [[] for _ in range(count)], notify
        self.stray = self.gaps = 0
        self.errors.clear()
        self.closes.clear()

    def received(self, version: int, now: int) -> None:
        i = version - self.first
        if 0 <= i < len(self.times):
            got = self.times[i]
            got.append(now)
            if self.notify and len(got) == len(self.connections):
                self.pipe.send(("all", version, now))
        else:
            self.stray += 1

    def collect(self) -> dict[str, Any]:
        return {
            "first": self.first,
            "times": [array.array("q", got).tobytes() for got in self.times],
            "stray": self.stray,
            "gaps": self.gaps,
            "errors": {k.decode(errors="replace"): n for k, n in self.errors.items()},
            "closes": dict(self.closes),
            "cpu": time.process_time(),
        }

    async def close(self) -> None:
        for lean in self.connections:
            if lean.transport is not None:
                lean.transport.close()
        self.connections = []
        await asyncio.sleep(0.2)


async def _serve_commands(pipe: Any, port: int, story: str, source: str | None) -> None:
    hub = Hub(port, story, pipe, source)
    loop = asyncio.get_running_loop()
    # Commands are read by a thread: uvloop's add_reader would make the pipe non-blocking, and
    # a large reply (every receipt) would then fail half-written.
    while True:
        name, *args = await loop.run_in_executor(None, pipe.recv)
        if name == "connect":
            pipe.send(("connected", await hub.connect(*args)))
        elif name == "expect":
            hub.expect(*args)
            pipe.send(("expecting",))
        elif name == "collect":
            pipe.send(("collected", hub.collect()))
        elif name == "close":
            await hub.close()
            pipe.send(("closed",))
        elif name == "exit":
            return


def _client_main(
    pipe: Any, port: int, story: str, source: str | None
) -> None:  # pragma: no cover - child process
    die_with_parent()
    raise_fd_limit()
    try:
        import uvloop

        uvloop.run(_serve_commands(pipe, port, story, source))
    except ImportError:
        asyncio.run(_serve_commands(pipe, port, story, source))


class ClientProcess:
    """One client process, driven from this one: connect, expect versions, collect, close."""

    def __init__(self, port: int, story: str, source: str | None = None) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipe, theirs = context.Pipe()
        self.proc = context.Process(
            target=_client_main, args=(theirs, port, story, source), daemon=True
        )
        self.proc.start()
        theirs.close()
        self.replies: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        self.notices: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        asyncio.get_running_loop().add_reader(self.pipe.fileno(), self._readable)

    def _readable(self) -> None:
        try:
            while self.pipe.poll():
                message = self.pipe.recv()
                (self.notices if message[0] == "all" else self.replies).put_nowait(message)
        except EOFError:
            asyncio.get_running_loop().remove_reader(self.pipe.fileno())
            self.replies.put_nowait(("died",))

    def drain(self) -> None:
        """Forget notices left from an earlier phase."""
        while not self.notices.empty():
            self.notices.get_nowait()

    async def call(self, *command: Any, timeout: float = 600) -> Any:
        self.pipe.send(command)
        reply = await asyncio.wait_for(self.replies.get(), timeout)
        if reply[0] == "died":
            raise RuntimeError(f"a client process died (exit code {self.proc.exitcode})")
        return reply[1] if len(reply) > 1 else None

    async def everyone(self, version: int, deadline: float) -> int:
        """Wait until each of this process's clients has ``version``; when the last one got it."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"not every client received version {version}")
            _, got, at = await asyncio.wait_for(self.notices.get(), left)
            if got >= version:
                return int(at)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(self.pipe.fileno())
            self.pipe.send(("exit",))
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()


def client_processes(n: int) -> int:
    """How many client processes ``n`` connections take: one per ``PER_PROCESS`` (at least one)."""
    return max(1, -(-n // PER_PROCESS))


class Clients:
    """The client processes, driven from this one as one crowd: each connect spreads its
    connections evenly over them, a version is everyone's when every process says so, and what
    they collect is merged (receipts joined per version, counts summed)."""

    def __init__(
        self, port: int, story: str, processes: int = 1, sources: Sequence[str | None] = ()
    ) -> None:
        sources = list(sources) or [None] * processes
        if len(sources) != processes:
            raise ValueError(f"{processes} client processes, {len(sources)} source addresses")
        self.procs = [ClientProcess(port, story, source) for source in sources]
        self.open = [0] * processes

    def drain(self) -> None:
        for proc in self.procs:
            proc.drain()

    async def call(self, *command: Any, timeout: float = 600) -> list[Any]:
        """Send ``command`` to every client process; their replies, in order."""
        replies = await asyncio.gather(*(p.call(*command, timeout=timeout) for p in self.procs))
        if command[0] == "close":
            self.open = [0] * len(self.procs)
        return list(replies)

    async def connect(self, n: int) -> dict[str, Any]:
        """Open ``n`` subscribed connections, shared evenly; ``PARALLEL_CONNECTS`` handshakes in
        flight in all (the servers' listen backlog is 100)."""
        k = len(self.procs)
        shares = [n // k + (1 if i < n % k else 0) for i in range(k)]
        parallel = max(1, -(-PARALLEL_CONNECTS // k))
        began = time.perf_counter()
        results = await asyncio.gather(
            *(
                p.call("connect", share, parallel)
                for p, share in zip(self.procs, shares, strict=True)
            )
        )
        seconds = time.perf_counter() - began
        failures: Counter[str] = Counter()
        for i, result in enumerate(results):
            self.open[i] = result["opened"]
            failures.update(result["failures"])
        opened = sum(self.open)
        if opened != n:
            raise RuntimeError(f"opened {opened:,} of {n:,} connections: {dict(failures)}")
        return {"opened": opened, "seconds": seconds, "failures": dict(failures)}

    async def expect(self, first: int, count: int, notify: bool) -> None:
        await self.call("expect", first, count, notify)

    async def collect(self) -> dict[str, Any]:
        """Every process's receipts and counts, merged; ``cpu``: their CPU seconds summed."""
        got = await self.call("collect")
        merged: dict[str, Any] = {
            "first": got[0]["first"],
            "times": [b"".join(parts) for parts in zip(*(g["times"] for g in got), strict=True)],
            "stray": sum(g["stray"] for g in got),
            "gaps": sum(g["gaps"] for g in got),
            "cpu": sum(g["cpu"] for g in got),
        }
        for name in ("errors", "closes"):
            total: Counter[Any] = Counter()
            for g in got:
                total.update(g[name])
            merged[name] = dict(total)
        return merged

    async def everyone(self, version: int, timeout: float) -> int:
        """Wait until every client has ``version``; the time the last one got it."""
        deadline = time.monotonic() + timeout
        last = 0
        for proc, count in zip(self.procs, self.open, strict=True):
            if count:
                last = max(last, await proc.everyone(version, deadline))
        return last

    async def close(self) -> None:
        await asyncio.gather(*(p.close() for p in self.procs))


# -- publishers ---------------------------------------------------------------------------------

Mark = tuple[int, int, int]
"""One append: its version, when it was sent and when its answer came back (monotonic ns)."""


class HttpAppender:
    """POST /stories/{story}/events on one keep-alive connection, request bytes built once."""

    def __init__(self, port: int, story: str, body: dict[str, Any] = PUBLISH) -> None:
        self.port = port
        payload = orjson.dumps({"type": "entry.published", "data": body})
        self.request = (
            f"POST /stories/{story}/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        ).encode() + payload
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def __call__(self) -> Mark:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        reader = self.reader
        assert reader is not None
        sent = time.monotonic_ns()
        self.writer.write(self.request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = await reader.readexactly(length)
        acked = time.monotonic_ns()
        if head[9:12] != b"201":
            raise RuntimeError(f"the append answered {head[9:12].decode()}: {body[:300]!r}")
        return int(orjson.loads(body)["version"]), sent, acked

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class FloorAppender:
    """XADD of the next prepared change frame to the floor's stream."""

    def __init__(self, url: str, frames: Sequence[bytes], first: int) -> None:
        self.client = connect(url)
        self.frames = frames
        self.first = first
        self.next = first

    async def __call__(self) -> Mark:
        version = self.next
        frame = self.frames[version - self.first]
        sent = time.monotonic_ns()
        await self.client.xadd(STREAM, {"c": frame})
        acked = time.monotonic_ns()
        self.next += 1
        return version, sent, acked

    async def close(self) -> None:
        await self.client.aclose()


# -- one phase: publish, then gather what every client got --------------------------------------


@dataclass(slots=True)
class Phase:
    """One server, one N, one way of publishing: the appends and every client's receipts."""

    server: str
    clients: int
    mode: str
    marks: list[Mark]
    receipts: list[array.array[int]]
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    problems: dict[str, Any] = field(default_factory=dict)
    rss_before: int = 0
    """The server's RSS (bytes) before these clients connected (see ``measure_server``)."""
    rss_after: int = 0
    """The server's RSS once every one of them had its snapshot (0: not read)."""

    @property
    def rss_per(self) -> float:
        """Bytes of the server's RSS per subscribed connection: (after - before) / N."""
        if not self.rss_after or not self.clients:
            return float("nan")
        return (self.rss_after - self.rss_before) / self.clients

    @property
    def frames(self) -> int:
        return sum(len(r) for r in self.receipts)

    @property
    def missing(self) -> int:
        return self.clients * len(self.marks) - self.frames

    @property
    def seconds(self) -> float:
        """First send to the last receipt by any client."""
        last = max((max(r) for r in self.receipts if r), default=self.marks[0][1])
        return (last - self.marks[0][1]) / 1e9

    @property
    def rate(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("nan")

    def to_last(self) -> list[float]:
        """Per event: ms from its 201 (or XADD reply) to the last client's receipt (sorted)."""
        return sorted(
            (max(r) - acked) * ms
            for (_, _, acked), r in zip(self.marks, self.receipts, strict=True)
            if r
        )

    def end_to_end(self) -> list[float]:
        """Per client and event: ms from sending the append to the receipt (sorted)."""
        out: list[float] = []
        for (_, sent, _), got in zip(self.marks, self.receipts, strict=True):
            out += [(t - sent) * ms for t in got]
        out.sort()
        return out

    def cpu_us(self) -> float:
        return self.server_cpu / self.frames * 1e6 if self.frames else float("nan")


async def run_phase(
    server: str,
    mode: str,
    clients: Clients,
    n: int,
    publish: Callable[[], Awaitable[Mark]],
    first: int,
    events: int,
    pid: int,
) -> Phase:
    """Publish ``events`` (``burst``: back to back; ``paced``: one in flight) and collect."""
    clients.drain()
    await clients.expect(first, events, True)
    cpu = process_cpu(pid)
    client_cpu = (await clients.collect())["cpu"]
    marks: list[Mark] = []
    if mode == "burst":
        for _ in range(events):
            marks.append(await publish())
        with contextlib.suppress(TimeoutError):
            await clients.everyone(first + events - 1, timeout=120 + n * events * 1e-4)
    else:
        for _ in range(events):
            mark = await publish()
            marks.append(mark)
            try:
                await clients.everyone(mark[0], timeout=30)
            except TimeoutError:
                break
            await asyncio.sleep(GAP)
    await asyncio.sleep(0.05)  # the last frames of clients that lost the race to the notice
    server_cpu = process_cpu(pid) - cpu
    got = await clients.collect()
    versions = [m[0] for m in marks]
    if versions != list(range(first, first + len(marks))):
        raise RuntimeError(f"{server}: appended versions {versions[:3]}... not from {first}")
    receipts = []
    for raw in got["times"][: len(marks)]:
        times = array.array("q")
        times.frombytes(raw)
        receipts.append(times)
    problems = {k: got[k] for k in ("stray", "gaps", "errors", "closes") if got[k]}
    phase = Phase(server, n, mode, marks, receipts, server_cpu, got["cpu"] - client_cpu, problems)
    if len(marks) < events:
        phase.problems["stalled"] = f"stopped after {len(marks)} of {events} events"
    return phase


# -- the servers --------------------------------------------------------------------------------


@dataclass(slots=True)
class Ours:
    http_port: int
    ws_port: int
    fanout_pid: int
    """The process that fans out: the gateway (split) or the one serve process."""
    pids: dict[str, int]


def start_ours(children: Children, url: str, tmp: Path, layout: str) -> Ours:
    """The API, the projector and the gateway on the bench's Valkey, each a process (or one)."""
    http_port, ws_port = free_port(), free_port()
    env = {"DATELINE_ADMIN_TOKEN": TOKEN}
    run = [sys.executable, "-m", "services"]
    redis = ["--redis", url]
    if layout == "serve":
        argvs = {
            "serve": [
                *run,
                "serve",
                *redis,
                "--http-port",
                str(http_port),
                "--ws-port",
                str(ws_port),
            ]
        }
    else:
        argvs = split_commands(url, http_port, ws_port)
    pids = {}
    procs = {}
    for name, argv in argvs.items():
        log = tmp / f"{name}.log"
        procs[name] = children.start(name, argv, env, log)
        pids[name] = procs[name].pid
    http = "serve" if layout == "serve" else "api"
    wait_http(procs[http], f"http://127.0.0.1:{http_port}/healthz", tmp / f"{http}.log")
    fanout = "serve" if layout == "serve" else "gateway"
    wait_tcp(procs[fanout], ws_port, tmp / f"{fanout}.log")
    return Ours(http_port, ws_port, pids[fanout], pids)


def start_floor(children: Children, url: str, tmp: Path) -> tuple[int, int]:
    """The hand-written floor server; its port and pid."""
    port = free_port()
    log = tmp / "floor.log"
    proc = children.start(
        "floor", [sys.executable, "-m", "bench.ws_floor", str(port)], {"BENCH_REDIS_URL": url}, log
    )
    wait_tcp(proc, port, log)
    return port, proc.pid


def open_story(http_port: int, story: str, entries: int = ENTRIES) -> int:
    """Open ``story`` through the API with ``entries`` entries; wait until it is projected."""
    base = f"http://127.0.0.1:{http_port}"
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        answer = http.post(
            "/stories", json={"story": story, "title": "Storm Oriane makes landfall"}
        )
        if answer.status_code != 201:
            raise RuntimeError(f"opening {story}: {answer.status_code} {answer.text}")
        for _ in range(entries):
            answer = http.post(
                f"/stories/{story}/events", json={"type": "entry.published", "data": PUBLISH}
            )
            if answer.status_code != 201:
                raise RuntimeError(f"publishing: {answer.status_code} {answer.text}")
        version = int(answer.json()["version"])
        answer = http.get(f"/stories/{story}", params={"min_version": version}, timeout=10)
        if answer.status_code != 200:
            raise RuntimeError(f"the projector did not reach {version}: {answer.status_code}")
    return version


async def change_template(url: str, story: str) -> bytes:
    """The projector's change frame of the story's last ``entry.published`` (the floor's payload)."""
    client: Any = connect(url)  # replies as bytes; redis-py's stubs type them as str too
    try:
        rows = await client.xrevrange(keys.changes(story), count=1)
    finally:
        await client.aclose()
    if not rows:
        raise RuntimeError(f"no change frames for {story}: is the projector running?")
    return bytes(changes_of(rows[0][1])[-1][1])


# -- the bench ----------------------------------------------------------------------------------


@dataclass(slots=True)
class Setup:
    """Both servers, running, and what their publishers need."""

    url: str
    ours: Ours
    floor_port: int
    floor_pid: int
    template: bytes
    version: int
    floor_version: int = 1
    baseline: dict[str, int] = field(default_factory=dict)
    """Per server: its RSS before any client of the run's sizes joined (``warm_up``)."""
    dialled: int = 0
    """Client processes started so far: each takes the next source address."""

    def pid(self, server: str) -> int:
        """The process that fans out for ``server``: ours' gateway (serve: its worker), the floor."""
        return self.ours.fanout_pid if server == "ours" else self.floor_pid

    def port(self, server: str) -> int:
        return self.ours.ws_port if server == "ours" else self.floor_port

    def clients(self, server: str, n: int) -> Clients:
        """Client processes for ``n`` connections to ``server``, each from a source address not
        used before in this run (127.0.0.2, 127.0.0.3, ...: see ``Hub.dial``)."""
        k = client_processes(n)
        sources = [source_address(self.dialled + i) for i in range(k)]
        self.dialled += k
        return Clients(self.port(server), STORY, k, sources)


def source_address(k: int) -> str:
    """The ``k``-th loopback source address of a run: 127.0.0.2 onwards (127.0.0.1 is left to
    the publishers and servers)."""
    return f"127.0.{k // 250}.{k % 250 + 2}"


async def warm_up(setup: Setup, server: str) -> None:
    """``WARM`` connections subscribe and leave; then the server's baseline RSS is read."""
    clients = setup.clients(server, WARM)
    try:
        await clients.connect(WARM)
        await clients.call("close")
    finally:
        await clients.close()
    await asyncio.sleep(SETTLE)
    setup.baseline[server] = rss_bytes(setup.pid(server))


async def measure_server(
    setup: Setup, server: str, n: int, events: int, modes: Sequence[str], settle: float = 0.0
) -> dict[str, Phase]:
    """Connect ``n`` clients to one server, run each mode with ``events`` appends, disconnect.

    The server's RSS is read before they connect (or taken from ``setup.baseline``, when
    ``warm_up`` read it) and ``settle`` seconds after the last of them had its snapshot; both go
    into every phase.
    """
    ours = server == "ours"
    pid = setup.pid(server)
    before = setup.baseline.get(server) or rss_bytes(pid)
    clients = setup.clients(server, n)
    phases: dict[str, Phase] = {}
    try:
        joined = await clients.connect(n)
        await asyncio.sleep(settle)
        after = rss_bytes(pid)
        plural = "s" if n != 1 else ""
        spread = f" from {len(clients.procs)} processes" if len(clients.procs) > 1 else ""
        say(
            f"  {server}: {n:,} client{plural}{spread} subscribed in {joined['seconds']:.1f} s; "
            f"RSS {before / 1e6:.1f} -> {after / 1e6:.1f} MB"
        )
        for mode in modes:
            if ours:
                first = setup.version + 1
                publish: Any = HttpAppender(setup.ours.http_port, STORY)
            else:
                first = setup.floor_version
                publish = FloorAppender(
                    setup.url, floor_frames(setup.template, first, events), first
                )
            try:
                phase = await run_phase(server, mode, clients, n, publish, first, events, pid)
            finally:
                await publish.close()
            phase.rss_before, phase.rss_after = before, after
            if ours:
                setup.version += len(phase.marks)
            else:
                setup.floor_version += len(phase.marks)
            phases[mode] = phase
            if phase.problems or phase.missing:
                say(
                    f"  WARNING {server} {mode} {n:,}: missing {phase.missing:,} frames; {phase.problems}"
                )
        await clients.call("close")
    finally:
        await clients.close()
    await asyncio.sleep(0.5)  # the server forgets the closed connections
    return phases


def phase_row(phase: Phase, against: Phase | None) -> list[str]:
    last = phase.to_last()
    return [
        phase.server,
        fmt(phase.clients),
        phase.mode,
        fmt(phase.frames),
        fmt(phase.seconds, 2),
        fmt(phase.rate),
        fmt(phase.rate / against.rate, 2) if against is not None else "-",
        fmt(percentile(last, 50), 1),
        fmt(percentile(last, 99), 1),
        fmt(phase.cpu_us(), 1),
        fmt(phase.client_cpu / phase.frames * 1e6 if phase.frames else float("nan"), 1),
    ]


COLUMNS = [
    "server",
    "clients",
    "mode",
    "frames",
    "seconds",
    "frames/s",
    "x floor",
    "201->last p50 ms",
    "p99 ms",
    "server us/frame",
    "client us/frame",
]


async def setup_servers(url: str, children: Children, tmp: Path, layout: str) -> Setup:
    ours = start_ours(children, url, tmp, layout)
    floor_port, floor_pid = start_floor(children, url, tmp)
    version = open_story(ours.http_port, STORY)
    template = await change_template(url, STORY)
    return Setup(url, ours, floor_port, floor_pid, template, version)


def sizes_of(options: Options) -> tuple[int, ...]:
    """The client counts of a run: ``--clients`` (ascending, so a server's RSS before each size
    is its baseline, not what a bigger crowd left behind), else 1,000 and 5,000 (quick: 200 and
    1,000)."""
    given: tuple[int, ...] | None = options.extra.clients
    if given:
        return tuple(sorted(set(given)))
    return (200, 1_000) if options.quick else (1_000, 5_000)


def client_counts(text: str) -> tuple[int, ...]:
    """``--clients N[,M...]``: positive counts, commas and ``_`` allowed (19000 or 19_000)."""
    try:
        counts = tuple(int(part.replace("_", "")) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of counts: {text!r}") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"counts must be at least 1: {text!r}")
    return counts


def too_many(sizes: Sequence[int]) -> str | None:
    """Why the largest size cannot run on one server process here, or None.

    Each connection is an open file of the gateway (and of the floor), one process each; no
    process may raise its soft RLIMIT_NOFILE past the hard one, so a size beyond that minus
    ``FD_MARGIN`` would only fail midway (or be capped in silence): refused before anything starts.
    """
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY or max(sizes) <= hard - FD_MARGIN:
        return None
    return (
        f"bench.fanout: {max(sizes):,} clients cannot run here: one gateway process holds every "
        f"connection, and this machine's hard RLIMIT_NOFILE is {hard:,} open files per process, so "
        f"at most {hard - FD_MARGIN:,} clients ({FD_MARGIN} kept for the process itself); raise the "
        f"hard limit (ulimit -Hn, limits.conf, systemd LimitNOFILE=) to go further"
    )


async def measure(url: str, options: Options, children: Children, tmp: Path) -> list[Check]:
    sizes = sizes_of(options)
    events = 50 if options.quick else 200
    layout = options.extra.layout
    setup = await setup_servers(url, children, tmp, layout)
    described = ", ".join(setup.ours.pids)
    if layout == "serve":
        # Imported here: bench.e2e_latency imports this module.
        from bench.e2e_latency import serve_workers

        supervisor = setup.ours.pids["serve"]
        setup.ours.pids = serve_workers(supervisor)
        setup.ours.fanout_pid = setup.ours.pids["gateway"]
        described = f"the supervisor (pid {supervisor}) and its workers " + ", ".join(
            f"{name} (pid {pid})" for name, pid in setup.ours.pids.items()
        )
    say(machine_line(options))
    say(
        f"ours: {layout} layout ({described}); floor: bench/ws_floor.py; one story, "
        f"{events} entry.published per phase; change frame {len(setup.template)} bytes; clients: "
        f"lean websocket connections, {PER_PROCESS:,} at most per process (each from its own "
        f"127.0.x.y); burst = each append sent when the previous 201 came back; paced = one event "
        f"in flight, the next {GAP * 1000:g} ms after every client has it"
    )
    for server in ("ours", "floor"):
        await warm_up(setup, server)
    results: dict[tuple[str, int, str], Phase] = {}
    for n in sizes:
        for server in ("ours", "floor"):
            for mode, phase in (
                await measure_server(setup, server, n, events, ("burst", "paced"), SETTLE)
            ).items():
                results[(server, n, mode)] = phase
    rows = []
    for n in sizes:
        for mode in ("burst", "paced"):
            floor = results[("floor", n, mode)]
            rows.append(phase_row(results[("ours", n, mode)], floor))
            rows.append(phase_row(floor, None))
    table(f"fan-out of {events} events to N clients of one story", COLUMNS, rows)
    say(
        "frames/s = frames received / (first send -> last receipt); 201->last: per event, from the "
        "append's 201 (the floor: the XADD's reply) to the last client's receipt (burst: includes the "
        "queue the burst builds; it may be negative when a fan-out beats the 201 back); us/frame: "
        "CPU of the fanning-out process (ours: the gateway; serve: its dl-gateway worker) and of "
        "the client processes, per frame"
    )
    memory = []
    for n in sizes:
        floor = results[("floor", n, "burst")]
        for server in ("ours", "floor"):
            phase = results[(server, n, "burst")]
            memory.append(
                [
                    phase.server,
                    fmt(n),
                    fmt(phase.rss_before / 1e6, 1),
                    fmt(phase.rss_after / 1e6, 1),
                    fmt(phase.rss_per / KB, 1),
                    fmt(phase.rss_per / floor.rss_per, 2) if server == "ours" else "-",
                ]
            )
    table(
        "RSS of the fanning-out process with N subscribed clients",
        ["server", "clients", "before MB", "with N MB", "per connection KB", "x floor"],
        memory,
    )
    say(
        f"before: after {WARM} connections subscribed and left, before the first size; with N: "
        f"{SETTLE:g} s after the last of N had its snapshot; per connection = (with N - before) / N; "
        f"1 KB = 1,000 bytes"
    )
    checks = [
        Check(
            FANOUT_RATE,
            f"frames/s, {n:,} clients (burst)",
            results[("ours", n, "burst")].rate,
            results[("floor", n, "burst")].rate,
            "frames/s",
        )
        for n in sizes
    ]
    big = sizes[-1]
    checks.append(
        Check(
            FANOUT_LAST,
            f"201 -> last client p99, {big:,} clients (paced)",
            percentile(results[("ours", big, "paced")].to_last(), 99),
            percentile(results[("floor", big, "paced")].to_last(), 99),
            "ms",
        )
    )
    checks_table("targets", checks)
    return checks


def layout_option(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument(
        "--layout",
        choices=("split", "serve"),
        default="split",
        help="ours as api + projector + gateway processes (split, default) or one serve process",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = layout_option(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument(
        "--clients",
        type=client_counts,
        metavar="N[,M...]",
        help="client counts, comma-separated (default 1,000 and 5,000; quick 200 and 1,000); at "
        "most the hard RLIMIT_NOFILE minus 200",
    )
    options = parse_options(parser.description or "", argv, parser)
    refused = too_many(sizes_of(options))
    if refused is not None:
        say(refused)
        return 2

    def body() -> int:
        raise_fd_limit()
        with valkey(options.fsync) as url, workdir() as tmp, Children() as children:
            checks = asyncio.run(measure(url, options, children, tmp))
        return finish(options, checks)

    return main_wrapper(body)


if __name__ == "__main__":
    sys.exit(main())
