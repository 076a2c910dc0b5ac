"""``dateline tail`` against the running gateway: what the terminal shows, resuming, exit codes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import orjson

from events.decide import parse_command
from services.cli.tail import follow
from services.store.record import Store
from tests.conftest import ROOT, free_port
from tests.services.realtime.test_gateway import opened, projected, publish

Frame = dict[str, Any]


async def until(condition: Callable[[], object], timeout: float = 15.0) -> None:
    """Wait until ``condition()`` holds (the follower runs beside the test)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def write(store: Store, story: str, event_type: str, **data: Any) -> None:
    await store.append(story, parse_command(event_type, data), actor="editor:t")


class Proxy:
    """A TCP proxy in front of the gateway: the test cuts it, and keeps it shut for a while."""

    def __init__(self, ws_url: str) -> None:
        target = urlsplit(ws_url)
        self.target = (target.hostname or "127.0.0.1", target.port or 80)
        self.path = target.path
        self.open = True
        self.links: set[asyncio.StreamWriter] = set()
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"ws://127.0.0.1:{port}{self.path}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.open:
            writer.transport.abort()
            return
        upstream_reader, upstream = await asyncio.open_connection(*self.target)
        self.links |= {writer, upstream}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.transport.abort()

        await asyncio.gather(pipe(reader, upstream), pipe(upstream_reader, writer))

    def cut(self) -> None:
        """Drop every connection through the proxy at once, as a network failure would."""
        for link in self.links:
            link.transport.abort()
        self.links.clear()

    async def close(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()


async def test_a_dropped_connection_resumes_with_no_version_missed_or_repeated(
    ws_url: str, store: Store, story_id: str
) -> None:
    """Cut the network, write while it is down, restore it: every version arrives exactly once."""
    proxy = Proxy(ws_url)
    url = await proxy.start()
    await projected(store, story_id, await opened(store, story_id, 1))
    frames: list[Frame] = []
    notices: list[str] = []
    stop = asyncio.Event()
    task = asyncio.create_task(
        follow(url, story_id, frames.append, stop=stop, on_notice=notices.append)
    )
    try:
        await until(lambda: frames)
        for i in range(1, 6):
            await publish(store, story_id, i)
        await until(lambda: frames[-1]["version"] == 7)

        proxy.open = False
        proxy.cut()
        await until(lambda: notices)
        for i in range(6, 11):
            await publish(store, story_id, i)
        await projected(store, story_id, 12)
        proxy.open = True
        for i in range(11, 14):
            await publish(store, story_id, i)
        await until(lambda: frames[-1]["version"] == 15)
    finally:
        stop.set()
        await task
        await proxy.close()

    assert frames[0]["type"] == "snapshot"
    assert frames[0]["version"] == 2
    assert all(f["type"] == "change" for f in frames[1:])
    assert [f["version"] for f in frames[1:]] == list(range(3, 16))
    assert any("connection lost" in n for n in notices)


def tail(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "services", "tail", *args],
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "100"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_tail_of_an_unknown_story_exits_2_with_a_message(ws_url: str) -> None:
    """``dateline tail no-such-story`` says so on stderr, prints nothing, and exits 2."""
    proc = tail("no-such-story", "--ws-url", ws_url)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "no-such-story" in err
    assert "does not exist" in err
    assert out == ""


def test_tail_without_a_gateway_exits_3(ws_url: str) -> None:
    """Nothing listening at the URL: a short retry, then exit 3 with a message."""
    proc = tail("any-story", "--ws-url", f"ws://127.0.0.1:{free_port()}/ws")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 3
    assert "no gateway" in err
    assert out == ""


async def test_tail_json_prints_frames_as_lines_and_ctrl_c_exits_0(
    ws_url: str, store: Store, story_id: str
) -> None:
    """``--json`` writes each frame as one JSON line; SIGINT ends the tail with 0."""
    await projected(store, story_id, await opened(store, story_id, 1))
    proc = tail(story_id, "--ws-url", ws_url, "--json")
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    stdout = proc.stdout
    reader = threading.Thread(target=lambda: [lines.put(line) for line in stdout], daemon=True)
    reader.start()
    try:
        first = orjson.loads(await asyncio.to_thread(lines.get, timeout=20))
        assert first["type"] == "snapshot"
        assert first["version"] == 2
        await publish(store, story_id, 1)
        second = orjson.loads(await asyncio.to_thread(lines.get, timeout=20))
        assert (second["type"], second["version"], second["event"]) == (
            "change",
            3,
            "entry.published",
        )
        proc.send_signal(signal.SIGINT)
        assert await asyncio.to_thread(proc.wait, 15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(5)
        stdout.close()
        if proc.stderr:
            proc.stderr.close()
