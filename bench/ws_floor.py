"""The floor of the websocket benches: a minimal hand-written websockets.broadcast server.

What a fan-out costs with nothing of ours in the way: a ``websockets`` server (the library and
version the gateway uses, served the same way: ``serve`` awaited in ``services.run.serve.run_loop``,
the gateway's event loop (uvloop where installed), compression off, the same frame limit and heartbeat) where each connection
sends one subscribe frame (any JSON object with ``"op": "subscribe"``), gets a small snapshot frame
back and is then live; and one task that reads one stream with ``XREAD BLOCK`` and hands each
entry's ``c`` field, as is, to ``websockets.broadcast`` as a text frame for every live connection.
No per-story channels, no ordering checks, no backlog: the floor.

    python -m bench.ws_floor PORT        (env BENCH_REDIS_URL, BENCH_STREAM)

The publisher of the floor XADDs change-sized payloads (``floor_frames``) to that stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from typing import Any

import orjson
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed

from services.store.connection import connect

STREAM = "bench:floor:changes"
MAX_FRAME = 64 * 1024  # as services.realtime.gateway
PING = 20.0  # as services.realtime.gateway


def floor_frames(template: bytes, first: int, count: int) -> list[bytes]:
    """``count`` copies of a real change frame, numbered ``first..``: the floor's payloads."""
    change: dict[str, Any] = orjson.loads(template)
    frames = []
    for version in range(first, first + count):
        change["version"] = version
        frames.append(orjson.dumps(change))
    return frames


async def main(port: int, url: str, stream: str) -> None:
    client: Any = connect(url)  # replies as bytes; redis-py's stubs type them as str too
    live: set[ServerConnection] = set()

    async def handler(connection: ServerConnection) -> None:
        try:
            request = orjson.loads(await connection.recv())
            if not isinstance(request, dict) or request.get("op") != "subscribe":
                return
            story = request.get("story")
            await connection.send(
                orjson.dumps({"type": "snapshot", "story": story, "version": 0}).decode()
            )
            live.add(connection)
            async for _ in connection:
                pass
        except (ConnectionClosed, orjson.JSONDecodeError):
            pass
        finally:
            live.discard(connection)

    async def tail() -> None:
        last = "$"
        while True:
            replies = await client.xread({stream: last}, count=1_000, block=1_000)
            for _, entries in replies:
                for entry_id, fields in entries:
                    last = entry_id
                    broadcast(live, fields[b"c"], text=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with serve(
        handler,
        "127.0.0.1",
        port,
        compression=None,
        max_size=MAX_FRAME,
        ping_interval=PING,
        ping_timeout=PING,
    ):
        reader = loop.create_task(tail())
        print("ready", flush=True)
        await stop.wait()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
    await client.aclose()


if __name__ == "__main__":
    from services.run.serve import run_loop

    run_loop(
        main(
            int(sys.argv[1]), os.environ["BENCH_REDIS_URL"], os.environ.get("BENCH_STREAM", STREAM)
        )
    )
