"""Abuse of the websocket gateway (issue 11, 8): malformed and oversized frames, origins, and a
slow reader beside 200 normal ones, each on a ``dateline serve`` of the test's own, so its
gateway worker's memory (``VmRSS``) can be read before, during and after.

The limits are the contract's ("Websocket gateway", "Details that tests rely on", "Limits that
protect the newsroom") and docs/limits.md's: a malformed frame gets ``bad_request`` and the
connection stays open; a frame over 64 KiB closes with 1009; a foreign ``Origin`` is refused at
the handshake (403), none at all is a tool's and accepted; a client that does not keep up is
closed with 1013 at once past 1 MiB owed (or after 10 s of taking nothing), and dropped when it
has not taken its close frame 10 s later, and nobody else waits for it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import statistics
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from events.decide import parse_command, parse_open
from services.realtime.backlog import MAX_BUFFER, STALL_TIMEOUT
from services.realtime.gateway import CLOSE_TIMEOUT, MAX_FRAME
from services.store.readmodel import ReadModel
from services.store.record import Store
from tests.conftest import free_port, start_serve, wait_ready
from tests.contract.test_crash import children
from tests.faults.conftest import scaled, store_agnostic
from tests.services.realtime.test_gateway import fill, server_end

pytestmark = store_agnostic

Figure = Callable[[str, str], None]
MIB = 1024 * 1024


@dataclass
class Served:
    """A ``dateline serve`` of this test's own and its gateway worker."""

    http: str
    ws: str
    ws_port: int
    gateway: int
    """The pid of the worker that holds the websocket connections (``dl-gateway``)."""

    def rss(self) -> float:
        """The gateway worker's resident memory now, in MiB."""
        for line in Path(f"/proc/{self.gateway}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")


def worker(serve: int, name: str) -> int:
    """The pid of ``serve``'s worker called ``name`` (as ps shows it: services.run.supervisor)."""
    (pid,) = [p for p in children(serve) if Path(f"/proc/{p}/comm").read_text().strip() == name]
    return pid


@contextlib.asynccontextmanager
async def serving(url: str, data_dir: Path, **env: str) -> AsyncIterator[Served]:
    """``dateline serve`` on the store at ``url`` with ``env``; stopped afterwards."""
    port, ws_port = free_port(), free_port()
    proc = start_serve(url, data_dir, port, ws_port, **env)
    try:
        await asyncio.to_thread(wait_ready, proc, f"http://127.0.0.1:{port}")
        gateway = worker(proc.pid, "dl-gateway")
        yield Served(f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{ws_port}/ws", ws_port, gateway)
    finally:
        proc.terminate()
        proc.wait(20)
        if proc.stdout:
            proc.stdout.close()


class Peak:
    """The gateway's largest RSS while it runs, sampled every 50 ms."""

    def __init__(self, served: Served) -> None:
        self.served, self.peak = served, served.rss()
        self._task = asyncio.get_running_loop().create_task(self._sample())

    async def _sample(self) -> None:
        while True:
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                self.peak = max(self.peak, self.served.rss())
            await asyncio.sleep(0.05)

    async def stop(self) -> float:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        return max(self.peak, self.served.rss())


async def opened(store: Store, story: str) -> None:
    await store.append(story, parse_open({"story": story, "title": "Abuse"}), actor="editor:t")
    await ReadModel(store.client).wait_for(story, 1, 15.0)


def subscribe(story: str) -> str:
    return orjson.dumps({"op": "subscribe", "story": story}).decode()


async def recv(ws: ClientConnection, timeout: float = 15.0) -> dict[str, object]:
    return dict(orjson.loads(await asyncio.wait_for(ws.recv(), timeout)))


# -- 1. malformed frames -----------------------------------------------------------------------


def malformed(story: str) -> list[str | bytes]:
    """One of each kind of frame that is no op: each is answered ``bad_request``."""
    deep = 1000  # within orjson's depth limit (1024): parsed, then refused
    return [
        "not json",
        "",
        "{",
        '{"op": "ping"',
        "\x00\x01\x02",
        '{"op": "\\ud800"}',  # a lone surrogate escape
        "[]",
        "1",
        '"ping"',
        "null",
        "true",
        "[" * deep + "]" * deep,  # an array nested 1,000 deep: no object
        "[" * 2000 + "]" * 2000,  # past orjson's depth limit
        '{"op": ' + "[" * deep + "]" * deep + "}",  # an op nested 1,000 deep
        '{"a": ' * deep + "1" + "}" * deep,  # an object nested 1,000 deep with no op
        "{}",
        '{"story": "x"}',
        '{"op": null}',
        '{"op": "publish"}',
        '{"op": "SUBSCRIBE"}',
        '{"op": "x' + "y" * 60_000 + '"}',  # a 60 KB unknown op
        '{"op": 5}',
        '{"op": {"op": "ping"}}',
        '{"op": 123456789012345678901234567890}',
        '{"op": 1e400}',  # a number past a double: orjson refuses it
        "[" + "9" * 60_000 + "]",  # one 60,000-digit number
        '{"op": "subscribe"}',
        '{"op": "subscribe", "story": 5}',
        '{"op": "unsubscribe", "story": ["x"]}',
        orjson.dumps({"op": "subscribe", "story": story, "since": -1}).decode(),
        orjson.dumps({"op": "subscribe", "story": story, "since": 1.5}).decode(),
        orjson.dumps({"op": "subscribe", "story": story, "since": "10"}).decode(),
        f'{{"op": "subscribe", "story": "{story}", "since": 1e308}}',
        f'{{"op": "subscribe", "story": "{story}", "since": 123456789012345678901234567890}}',
        b"\xff\xfe\xfd",  # binary frames: not UTF-8, not JSON
        b"\x00" * 1000,
        os.urandom(4096),
        b"[1, 2, 3]",
    ]


async def hammer(ws_url: str, story: str, frames: int, batch: int) -> tuple[int, int, int]:
    """Send ``frames`` malformed frames on one connection, ``batch`` at a time, each batch's
    answers read and a ping after it: (bad_request frames, other answers, pongs)."""
    kinds = malformed(story)
    bad = other = pongs = 0
    async with connect(ws_url, max_size=None) as ws:
        for start in range(0, frames, batch):
            count = min(batch, frames - start)
            for i in range(start, start + count):
                await ws.send(kinds[i % len(kinds)])
            await ws.send('{"op": "ping"}')
            for _ in range(count):
                answer = await recv(ws)
                if answer.get("type") == "error" and answer.get("code") == "bad_request":
                    bad += 1
                else:
                    other += 1
            pongs += await recv(ws) == {"type": "pong"}
        assert ws.close_code is None
    return bad, other, pongs


async def test_10000_malformed_frames_each_get_bad_request_and_the_connections_stay_open(
    isolated_url: str, tmp_path: Path, story_id: str, figure: Figure
) -> None:
    """10,000 frames that are no op (bad JSON, JSON that is no object, unknown or missing ops,
    binary, huge numbers, deep nesting) over 10 connections, the op limit off: every one is
    answered ``bad_request``, a ping after each batch is answered, and no connection closes."""
    total, connections, batch = scaled(10_000, 100_000), 10, 50
    async with serving(isolated_url, tmp_path, DATELINE_WS_OPS_RATE="0") as served:
        store = Store.from_url(isolated_url)
        try:
            await opened(store, story_id)
        finally:
            await store.close()
        before = served.rss()
        peak = Peak(served)
        each = total // connections
        results = await asyncio.gather(
            *(hammer(served.ws, story_id, each, batch) for _ in range(connections))
        )
        top = await peak.stop()
        await asyncio.sleep(0.5)
        after = served.rss()
    bad = sum(r[0] for r in results)
    other = sum(r[1] for r in results)
    pongs = sum(r[2] for r in results)
    figure(
        "malformed ws frames",
        f"{total:,} frames of {len(malformed(story_id))} kinds over {connections} connections:"
        f" bad_request {bad:,} of {total:,}, other answers {other}, pings answered"
        f" {pongs} of {pongs}, connections closed 0; gateway RSS {before:.1f} MiB before,"
        f" peak +{top - before:.1f} MiB, after +{after - before:.1f} MiB",
    )
    assert (bad, other) == (total, 0)
    assert pongs == connections * -(-each // batch)
    assert top - before < 64, "the gateway's memory grew with malformed frames"


# -- 2. frames over 64 KiB ---------------------------------------------------------------------


def handshake(host: str, port: int, origin: list[str] | None = None) -> socket.socket:
    """A raw websocket connection, past the handshake (``origin``: each an Origin header)."""
    s = socket.create_connection((host, port))
    key = base64.b64encode(os.urandom(16)).decode()
    headers = "".join(f"Origin: {o}\r\n" for o in origin or [])
    s.sendall(
        (
            f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\n{headers}\r\n"
        ).encode()
    )
    return s


def status_line(s: socket.socket) -> bytes:
    """The handshake answer's status line, its head read whole (the server says nothing more
    until the client sends a frame)."""
    s.settimeout(10)
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = s.recv(4096)
        if not chunk:
            break
        answer += chunk
    return answer.split(b"\r\n", 1)[0]


def close_code(s: socket.socket) -> int | None:
    """Read a raw connection past its handshake to its end: the code of the server's close
    frame, if one came."""
    s.settimeout(10)
    data = b""
    with contextlib.suppress(ConnectionResetError, TimeoutError):
        while chunk := s.recv(1 << 16):
            data += chunk
    at = 0
    while at + 2 <= len(data):  # walk the server's frames (unmasked, so no key)
        opcode, length = data[at] & 0x0F, data[at + 1] & 0x7F
        head = 2
        if length == 126:
            length, head = int.from_bytes(data[at + 2 : at + 4]), 4
        elif length == 127:
            length, head = int.from_bytes(data[at + 2 : at + 10]), 10
        if opcode == 0x8:
            return int.from_bytes(data[at + head : at + head + 2])
        at += head + length
    return None


async def test_a_frame_of_64_kib_is_read_and_anything_larger_closes_1009(
    isolated_url: str, tmp_path: Path, figure: Figure
) -> None:
    """Exactly 64 KiB is read; one byte more, a message of fragments past 64 KiB, and a header
    announcing 8 EiB each close with 1009 at once; 100 such connections cost the gateway
    almost nothing, since it reads no payload past the limit."""
    padding = " " * (MAX_FRAME - len('{"op":"ping"}'))
    rounds = scaled(100, 1_000)
    async with serving(isolated_url, tmp_path, DATELINE_WS_OPS_RATE="0") as served:
        async with connect(served.ws, max_size=None) as ws:
            await ws.send('{"op":"ping"}' + padding)
            assert await recv(ws) == {"type": "pong"}
        before = served.rss()
        peak = Peak(served)
        codes: list[int | None] = []
        for _ in range(rounds):
            async with connect(served.ws, max_size=None) as ws:
                await ws.send('{"op":"ping"}' + padding + " ")
                with contextlib.suppress(ConnectionClosed):
                    await recv(ws)
                codes.append(ws.close_code)
        async with connect(served.ws, max_size=None) as ws:
            await ws.send(["{" + " " * 40_000, " " * 40_000 + "}"])  # one message, two frames
            with contextlib.suppress(ConnectionClosed):
                await recv(ws)
            codes.append(ws.close_code)
        s = handshake("127.0.0.1", served.ws_port)
        try:
            assert b"101" in status_line(s)
            mask = os.urandom(4)
            s.sendall(bytes([0x81, 0x80 | 127]) + (2**63 - 1).to_bytes(8) + mask + b"{")
            codes.append(await asyncio.to_thread(close_code, s))
        finally:
            s.close()
        top = await peak.stop()
    figure(
        "ws frames over 64 KiB",
        f"64 KiB read and answered; 64 KiB + 1 closed 1009 in {codes[:rounds].count(1009)}"
        f" of {rounds}, 80 KB in two fragments closed {codes[-2]}, a header announcing"
        f" 2^63-1 bytes closed {codes[-1]}; gateway RSS peak +{top - before:.1f} MiB",
    )
    assert codes == [1009] * (rounds + 2)
    assert top - before < 32


# -- 3. origins --------------------------------------------------------------------------------


async def handshake_status(served: Served, origins: list[str]) -> int:
    """The HTTP status the gateway answers a handshake with these Origin headers."""

    def ask() -> int:
        s = handshake("127.0.0.1", served.ws_port, origins)
        try:
            return int(status_line(s).split()[1])
        finally:
            s.close()

    return await asyncio.to_thread(ask)


async def test_a_foreign_origin_is_refused_and_a_missing_one_is_a_tools(
    isolated_url: str, tmp_path: Path, figure: Figure
) -> None:
    """The handshake is 101 for no Origin (tools, ``dateline tail``), the API's own origin in
    both loopback spellings and each ``DATELINE_ORIGINS`` entry; 403 for any other, lookalikes
    and ``null`` included, and a second Origin header is no way around it."""
    extra = "https://live.example.org, https://www.example.org/"
    async with serving(isolated_url, tmp_path, DATELINE_ORIGINS=extra) as served:
        api = served.http.rsplit(":", 1)[1]
        allowed: list[list[str]] = [
            [],
            [f"http://127.0.0.1:{api}"],
            [f"http://localhost:{api}"],
            ["https://live.example.org"],
            ["https://www.example.org"],  # configured with a trailing slash
        ]
        refused: list[list[str]] = [
            ["https://evil.example"],
            ["null"],  # a sandboxed frame or a file: page
            [f"http://127.0.0.1:{int(api) + 1}"],
            [f"https://127.0.0.1:{api}"],
            ["http://live.example.org"],
            ["https://live.example.org.evil.example"],
            ["https://evil.example/https://live.example.org"],
            [""],
            ["https://evil.example", "https://live.example.org"],
            ["https://live.example.org", "https://evil.example"],
        ]
        got = {
            tuple(o): await handshake_status(served, o) for o in allowed + refused
        }  # every one on a fresh connection
        with pytest.raises(InvalidStatus) as foreign:
            async with connect(served.ws, origin="https://evil.example"):  # type: ignore[arg-type]  # a str Origin, as a browser sends
                pass
    opened_ = sum(got[tuple(o)] == 101 for o in allowed)
    denied = sum(got[tuple(o)] == 403 for o in refused[:-2])
    doubled = [got[tuple(o)] for o in refused[-2:]]
    figure(
        "ws origins",
        f"accepted {opened_} of {len(allowed)} (none, the API's own twice, DATELINE_ORIGINS"
        f" twice); refused 403 {denied} of {len(refused) - 2} foreign, lookalike, null or"
        f" empty; two Origin headers answered {doubled[0]} and {doubled[1]}",
    )
    assert [got[tuple(o)] for o in allowed] == [101] * len(allowed)
    assert [got[tuple(o)] for o in refused[:-2]] == [403] * (len(refused) - 2)
    assert all(400 <= code < 500 for code in doubled)
    assert foreign.value.response.status_code == 403


# -- 4. a slow reader beside 200 normal ones ---------------------------------------------------

READERS = 200


@dataclass
class Reader:
    """A normal reader: each version it got and when."""

    versions: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)


async def read(ws: ClientConnection, reader: Reader, last: int) -> None:
    while not reader.versions or reader.versions[-1] < last:
        raw = await asyncio.wait_for(ws.recv(decode=False), 60)
        at = time.monotonic()
        frame = orjson.loads(raw)
        if frame["type"] == "change":
            reader.versions.append(frame["version"])
            reader.times.append(at)


def write(url: str, story: str, first: int, count: int, body: str, pace: float) -> list[float]:
    """Append ``count`` entries from a thread of its own (the readers' loop never delays it):
    when each append was asked, by version from ``first``."""
    asked: list[float] = []

    async def go() -> None:
        store = Store.from_url(url)
        try:
            for i in range(count):
                asked.append(time.monotonic())
                data = {"body": body, "entry_id": f"e{first + i}"}
                await store.append(story, parse_command("entry.published", data), actor="e:t")
                await asyncio.sleep(max(0.0, asked[-1] + pace - time.monotonic()))
        finally:
            await store.close()

    asyncio.run(go())
    return asked


def established(ws_port: int, client: socket.socket) -> bool:
    end = server_end(ws_port, client)
    return end is not None and end[0] == "01"


async def slow_reader(ws_url: str, story: str) -> ClientConnection:
    """A subscriber with a 4 KiB receive buffer that stops reading once it has its snapshot."""
    host, port = ws_url.removeprefix("ws://").split("/")[0].split(":")
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect((host, int(port)))
    s.setblocking(False)
    ws = await connect(ws_url, sock=s, max_size=None)
    await ws.send(subscribe(story))
    assert (await recv(ws))["type"] == "snapshot"
    ws.transport.pause_reading()
    return ws


def latencies(readers: list[Reader], asked: list[float], first: int) -> list[float]:
    return [
        at - asked[v - first]
        for r in readers
        for v, at in zip(r.versions, r.times, strict=True)
        if first <= v < first + len(asked)
    ]


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


async def test_a_slow_reader_beside_200_is_closed_1013_and_the_others_get_everything(
    isolated_url: str, tmp_path: Path, story_id: str, figure: Figure
) -> None:
    """200 readers follow a story through a burst alone, then through a second one beside two
    readers that stopped reading: one wakes after the burst and finds its 1013, the other never
    does and is dropped within the documented bound; the 200 get every version in order."""
    burst = 200  # not longer in soak: the late waker must wake within CLOSE_TIMEOUT of its 1013
    # 6 MB of 31 KB entries: past 4 MiB of kernel buffer and 1 MiB
    body = "<p>" + "Reporters on the ground describe the scene. " * 720 + "</p>"
    pace = 0.03
    async with serving(isolated_url, tmp_path) as served:
        store = Store.from_url(isolated_url)
        try:
            await opened(store, story_id)
        finally:
            await store.close()
        readers = [Reader() for _ in range(READERS)]
        sockets = [await connect(served.ws, max_size=None) for _ in range(READERS)]
        try:
            for ws in sockets:
                await ws.send(subscribe(story_id))
            for ws in sockets:
                assert (await recv(ws))["version"] == 1
            before = served.rss()
            peak = Peak(served)
            last = 1 + burst
            tasks = [
                asyncio.create_task(read(ws, r, last))
                for ws, r in zip(sockets, readers, strict=True)
            ]
            alone = await asyncio.to_thread(write, isolated_url, story_id, 2, burst, body, pace)
            await asyncio.wait_for(asyncio.gather(*tasks), 120)
            alone_top = await peak.stop()
            alone_after = served.rss()

            waker = await slow_reader(served.ws, story_id)
            sleeper = await slow_reader(served.ws, story_id)
            sleeper_socket = sleeper.transport.get_extra_info("socket")
            assert established(served.ws_port, sleeper_socket)
            peak = Peak(served)
            first, last = last + 1, last + burst
            tasks = [
                asyncio.create_task(read(ws, r, last))
                for ws, r in zip(sockets, readers, strict=True)
            ]
            began = time.monotonic()
            beside = await asyncio.to_thread(
                write, isolated_url, story_id, first, burst, body, pace
            )
            ended = time.monotonic()
            waker.transport.resume_reading()  # it wakes up, late
            woken: list[int] = []
            with contextlib.suppress(ConnectionClosed):
                while True:
                    frame = orjson.loads(await asyncio.wait_for(waker.recv(), 30))
                    if frame["type"] == "change":
                        woken.append(frame["version"])
            await asyncio.wait_for(asyncio.gather(*tasks), 120)
            delivered = time.monotonic()  # the gateway has written the whole burst by now
            # Past 1 MiB owed in the burst: closed at once, dropped CLOSE_TIMEOUT later at most.
            bound = delivered + CLOSE_TIMEOUT + 2
            dropped: float | None = None
            while time.monotonic() < bound:
                if not established(served.ws_port, sleeper_socket):
                    dropped = time.monotonic()
                    break
                await asyncio.sleep(0.1)
            beside_top = await peak.stop()
            after = served.rss()
        finally:
            for ws in sockets:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.close(), 5)
        with contextlib.suppress(Exception):
            sleeper.transport.abort()
    ordered = sum(r.versions == list(range(2, last + 1)) for r in readers)
    lat_alone = latencies(readers, alone, 2)
    lat_beside = latencies(readers, beside, first)
    assert waker.close_code is not None
    figure(
        "slow ws reader beside 200",
        f"{READERS} readers x {2 * burst} entries of {len(body) // 1000} KB in order:"
        f" {ordered} of {READERS}; delivery p50/p99 alone"
        f" {p(lat_alone, 50) * 1000:.0f}/{p(lat_alone, 99) * 1000:.0f} ms, beside 2 stopped"
        f" readers {p(lat_beside, 50) * 1000:.0f}/{p(lat_beside, 99) * 1000:.0f} ms; the one"
        f" that woke after the burst: closed {waker.close_code} after"
        f" {len(woken)} of {burst} changes; the one that never read: dropped"
        f" {'never' if dropped is None else f'{dropped - began:.1f} s'} after the burst began"
        f" (burst {ended - began:.1f} s, delivered {delivered - began:.1f} s; bound: 1013 at"
        f" once past {MAX_BUFFER // MIB} MiB or {STALL_TIMEOUT:g} s idle, then"
        f" {CLOSE_TIMEOUT:g} s to take the close frame);"
        f" gateway RSS {before:.0f} MiB, peak +{alone_top - before:.1f} MiB alone,"
        f" +{beside_top - before:.1f} MiB beside, after +{after - before:.1f} MiB",
    )
    assert ordered == READERS
    assert waker.close_code == 1013
    assert len(woken) < burst
    assert dropped is not None, "the reader that never read still holds its connection"
    assert beside_top - alone_after < 64


async def test_a_reader_that_stops_under_the_budget_is_dropped_though_a_ping_is_stuck_behind(
    isolated_url: str, tmp_path: Path, figure: Figure
) -> None:
    """A reader that stops reading owes less than 1 MiB, its transport full when the gateway's
    keep-alive ping (20 s after the handshake) is written behind its frames: it is closed 1013
    after 10 s of taking nothing and dropped 10 s later. It once held its connection forever:
    the ping and the close each waited, unbounded, for a transport that never drains."""
    story = f"s-{os.urandom(6).hex()}"
    body = "<p>" + "Reporters on the ground describe the scene. " * 720 + "</p>"
    async with serving(isolated_url, tmp_path) as served:
        store = Store.from_url(isolated_url)
        try:
            await opened(store, story)
            sleeper = await slow_reader(served.ws, story)
            connected = time.monotonic()  # the gateway's keep-alive counts from about here
            sleeper_socket = sleeper.transport.get_extra_info("socket")
            await asyncio.sleep(12.0)
            # Its kernel send buffer full, then about 500 KB more: its transport pushes back.
            version = await fill(store, story, served.ws_port, sleeper_socket, body)
            end = server_end(served.ws_port, sleeper_socket)
            assert end is not None
            full = time.monotonic()
            assert full - connected < 19, "the transport filled after the keep-alive ping"
            bound = full + STALL_TIMEOUT + CLOSE_TIMEOUT + 5
            dropped: float | None = None
            while time.monotonic() < bound:
                if not established(served.ws_port, sleeper_socket):
                    dropped = time.monotonic()
                    break
                await asyncio.sleep(0.1)
        finally:
            await store.close()
            with contextlib.suppress(Exception):
                sleeper.transport.abort()
    figure(
        "ws reader stalled under the budget",
        f"kernel send queue full at {end[1] / MIB:.1f} MiB after {version - 17} entries,"
        f" then 16 entries more (about 500 KB owed) {full - connected:.1f} s after the"
        f" handshake; dropped {'never' if dropped is None else f'{dropped - full:.1f} s'} after"
        f" (bound: {STALL_TIMEOUT:g} s taking nothing, then {CLOSE_TIMEOUT:g} s to take the"
        " close frame)",
    )
    assert dropped is not None, "the stalled reader still holds its connection"
