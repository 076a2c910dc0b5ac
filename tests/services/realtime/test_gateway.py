"""The websocket gateway against the running ``dateline serve``: snapshot, since, order, limits."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis.asyncio as redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from events.decide import parse_command, parse_open
from services.projector.fold import Projector
from services.realtime.gateway import MAX_SUBSCRIPTIONS, STOP_TIMEOUT, Gateway
from services.store import keys
from services.store.connection import connect as store_client
from services.store.readmodel import ReadModel
from services.store.record import Store
from tests.conftest import free_port


async def recv(ws: ClientConnection, timeout: float = 10.0) -> dict[str, Any]:
    return dict(orjson.loads(await asyncio.wait_for(ws.recv(), timeout)))


async def opened(store: Store, story: str, entries: int = 0) -> int:
    await store.append(story, parse_open({"story": story, "title": "Live"}), actor="editor:t")
    for i in range(entries):
        await publish(store, story, i)
    return 1 + entries


async def publish(store: Store, story: str, i: int, body: str | None = None) -> None:
    data = {"body": body or f"<p>Update {i}</p>", "entry_id": f"e{i}"}
    await store.append(story, parse_command("entry.published", data), actor="editor:t")


async def projected(store: Store, story: str, version: int) -> None:
    """Wait until the session's projector has folded ``story`` up to ``version``."""
    await ReadModel(store.client).wait_for(story, version, 15.0)


@pytest.fixture
async def ws(ws_url: str) -> AsyncIterator[ClientConnection]:
    async with connect(ws_url, max_size=None) as c:
        yield c


async def versions_until(ws: ClientConnection, story: str, last: int) -> list[int]:
    seen: list[int] = []
    while not seen or seen[-1] < last:
        frame = await recv(ws)
        if frame["type"] == "change" and frame["story"] == story:
            seen.append(frame["version"])
    return seen


async def test_subscribe_gives_a_snapshot_then_live_changes(
    ws: ClientConnection, store: Store, story_id: str
) -> None:
    """A subscriber gets the current state, then each new version as it is projected."""
    await projected(store, story_id, await opened(store, story_id, 2))
    await ws.send(orjson.dumps({"op": "subscribe", "story": story_id}).decode())
    snapshot = await recv(ws)
    assert snapshot["type"] == "snapshot"
    assert snapshot["version"] == 3
    assert [e["entry_id"] for e in snapshot["state"]["entries"]] == ["e1", "e0"]
    await publish(store, story_id, 2)
    change = await recv(ws)
    assert change["type"] == "change"
    assert change["version"] == 4
    assert change["event"] == "entry.published"
    assert change["entry"]["entry_id"] == "e2"
    assert change["story_meta"] is None


async def test_since_replays_exactly_the_missing_versions(
    ws: ClientConnection, store: Store, story_id: str
) -> None:
    """``since`` N gives N+1..V in order, then live."""
    await projected(store, story_id, await opened(store, story_id, 5))
    await ws.send(orjson.dumps({"op": "subscribe", "story": story_id, "since": 3}).decode())
    assert [(await recv(ws))["version"] for _ in range(3)] == [4, 5, 6]
    await publish(store, story_id, 5)
    assert (await recv(ws))["version"] == 7


async def test_since_beyond_the_story_gets_a_reset_snapshot(
    ws: ClientConnection, store: Store, story_id: str
) -> None:
    """A ``since`` the server cannot replay answers with a snapshot marked ``reset``."""
    await projected(store, story_id, await opened(store, story_id, 1))
    await ws.send(orjson.dumps({"op": "subscribe", "story": story_id, "since": 99}).decode())
    frame = await recv(ws)
    assert frame["type"] == "snapshot"
    assert frame["reset"] is True
    assert frame["version"] == 2


async def test_a_subscribe_racing_a_burst_sees_no_gap_and_no_duplicate(
    ws_url: str, store: Store, story_id: str
) -> None:
    """Clients subscribing in the middle of 300 appends each see consecutive versions."""
    await projected(store, story_id, await opened(store, story_id))

    async def burst() -> None:
        for i in range(300):
            await publish(store, story_id, i)

    async def watcher(delay: float, since: bool) -> list[int]:
        await asyncio.sleep(delay)
        async with connect(ws_url) as c:
            request: dict[str, Any] = {"op": "subscribe", "story": story_id}
            if since:
                request["since"] = 1
            await c.send(orjson.dumps(request).decode())
            first = await recv(c)
            start = first["version"]
            seen = [start]
            while seen[-1] < 301:
                seen.append((await recv(c))["version"])
            return seen

    writer = asyncio.create_task(burst())
    results = await asyncio.gather(*(watcher(d / 20, d % 2 == 0) for d in range(6)))
    await writer
    for seen in results:
        assert seen == list(range(seen[0], 302))


async def test_unsubscribe_stops_the_changes(
    ws: ClientConnection, store: Store, story_id: str
) -> None:
    """After unsubscribe, a ping is answered and no change of that story arrives."""
    await projected(store, story_id, await opened(store, story_id))
    await ws.send(orjson.dumps({"op": "subscribe", "story": story_id}).decode())
    assert (await recv(ws))["type"] == "snapshot"
    await ws.send(orjson.dumps({"op": "unsubscribe", "story": story_id}).decode())
    await publish(store, story_id, 0)
    await projected(store, story_id, 2)
    await ws.send('{"op": "ping"}')
    assert await recv(ws) == {"type": "pong"}


async def test_one_connection_follows_many_stories(ws: ClientConnection, store: Store) -> None:
    """Two stories on one connection each arrive in their own order."""
    stories = [f"m-{os.urandom(6).hex()}" for _ in range(2)]
    for s in stories:
        await projected(store, s, await opened(store, s))
        await ws.send(orjson.dumps({"op": "subscribe", "story": s}).decode())
        assert (await recv(ws))["type"] == "snapshot"
    for i in range(3):
        for s in stories:
            await publish(store, s, i)
    got: dict[str, list[int]] = {s: [] for s in stories}
    while any(len(v) < 3 for v in got.values()):
        frame = await recv(ws)
        got[frame["story"]].append(frame["version"])
    assert all(v == [2, 3, 4] for v in got.values())


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", "bad_request"),
        ("[1, 2]", "bad_request"),
        ('{"story": "x"}', "bad_request"),
        ('{"op": "dance"}', "bad_request"),
        ('{"op": "subscribe"}', "bad_request"),
        ('{"op": "subscribe", "story": "no-such-story-here"}', "unknown_story"),
        ('{"op": "subscribe", "story": "Bad Id!"}', "unknown_story"),
        ('{"op": "subscribe", "story": "x", "since": "ten"}', "bad_request"),
    ],
)
async def test_bad_frames_get_an_error_and_the_connection_stays_open(
    ws: ClientConnection, frame: str, code: str
) -> None:
    """Each bad frame gets an error frame with the contract's code; a ping still works after."""
    await ws.send(frame)
    error = await recv(ws)
    assert error["type"] == "error"
    assert error["code"] == code
    assert error["message"]
    await ws.send('{"op": "ping"}')
    assert await recv(ws) == {"type": "pong"}


async def test_the_101st_subscription_is_refused(ws: ClientConnection, store: Store) -> None:
    """A connection holds at most 100 stories; the next gets too_many_subscriptions."""
    stories = [f"n-{os.urandom(6).hex()}" for _ in range(MAX_SUBSCRIPTIONS + 1)]
    for s in stories:
        await store.append(s, parse_open({"story": s, "title": "Many"}), actor="editor:t")
    for s in stories:
        await projected(store, s, 1)
    for s in stories[:-1]:
        await ws.send(orjson.dumps({"op": "subscribe", "story": s}).decode())
        assert (await recv(ws))["type"] == "snapshot"
    await ws.send(orjson.dumps({"op": "subscribe", "story": stories[-1]}).decode())
    assert (await recv(ws))["code"] == "too_many_subscriptions"


async def test_a_frame_of_64_kib_is_accepted_and_a_larger_one_closes_1009(ws_url: str) -> None:
    """Frames in are limited to 64 KiB: exactly that is read, one byte more closes with 1009."""
    async with connect(ws_url, max_size=None) as c:
        padding = " " * (64 * 1024 - len('{"op":"ping"}'))
        await c.send('{"op":"ping"}' + padding)
        assert await recv(c) == {"type": "pong"}
        await c.send('{"op":"ping"}' + padding + " ")
        with pytest.raises(ConnectionClosed) as closed:
            await recv(c)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1009


async def test_a_foreign_origin_is_refused(ws_url: str) -> None:
    """Browsers from origins not on the allow-list cannot open a socket."""
    with pytest.raises(Exception, match="403"):
        async with connect(ws_url, origin="https://evil.example"):  # type: ignore[arg-type]  # a str Origin, as a browser sends
            pass


async def test_two_gateways_deliver_the_same_versions(
    ws_url: str, redis_url: str, store: Store, story_id: str
) -> None:
    """A second gateway process on another port delivers the same ordered versions."""
    client = store_client(redis_url)
    second = Gateway(client)
    port = free_port()
    await second.start("127.0.0.1", port)
    try:
        await projected(store, story_id, await opened(store, story_id))
        async with connect(ws_url) as a, connect(f"ws://127.0.0.1:{port}/ws") as b:
            for c in (a, b):
                await c.send(orjson.dumps({"op": "subscribe", "story": story_id}).decode())
                assert (await recv(c))["version"] == 1
            for i in range(40):
                await publish(store, story_id, i)
            got = await asyncio.gather(
                versions_until(a, story_id, 41), versions_until(b, story_id, 41)
            )
        assert got[0] == got[1] == list(range(2, 42))
    finally:
        await second.stop()
        await client.aclose()


async def drain(s: socket.socket) -> bytes:
    """Read a raw socket until the server closes it."""
    s.setblocking(False)
    data = b""
    while True:
        try:
            chunk = s.recv(1 << 20)
        except BlockingIOError:
            await asyncio.sleep(0.02)
            continue
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def raw_websocket(url: str, story: str, since: int | None = None) -> socket.socket:
    """A client that completes the handshake, subscribes (from ``since``), then never reads."""
    host, port = url.removeprefix("ws://").split("/")[0].split(":")
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect((host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(
        (
            f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    request: dict[str, Any] = {"op": "subscribe", "story": story}
    if since is not None:
        request["since"] = since
    payload = orjson.dumps(request)
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    s.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)
    return s


def server_end(ws_port: int, client: socket.socket) -> tuple[str, int] | None:
    """The gateway's end of ``client``: its TCP state ("01": established) and the bytes in its
    kernel send queue; None once the gateway has let it go."""
    port = client.getsockname()[1]
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        parts = line.split()
        local, remote = int(parts[1].split(":")[1], 16), int(parts[2].split(":")[1], 16)
        if local == ws_port and remote == port:
            return parts[3], int(parts[4].split(":")[0], 16)
    return None


async def test_a_client_that_stops_reading_is_closed_and_delays_no_one(
    ws_url: str, store: Store, story_id: str
) -> None:
    """While 5,000 events go out, a stalled client is cut off with 1013 and a reader gets all."""
    await projected(store, story_id, await opened(store, story_id))
    stalled = raw_websocket(ws_url, story_id)
    try:
        async with connect(ws_url, max_size=None) as reader:
            await reader.send(orjson.dumps({"op": "subscribe", "story": story_id}).decode())
            assert (await recv(reader))["version"] == 1
            body = "<p>" + "Reporters on the ground describe the scene. " * 45 + "</p>"

            async def writer(n: int) -> None:
                for i in range(n, 5000, 4):
                    await publish(store, story_id, i, body)

            writers = asyncio.gather(*(writer(n) for n in range(4)))
            # Until the server's kernel send buffer for it is full (its send queue stops
            # growing), then 1,000 changes (2 MB) more: past our 1 MiB bound, so it is closed.
            ws_port = int(ws_url.rsplit(":", 1)[1].split("/")[0])
            seen: list[int] = []
            queued: list[int] = []
            full: int | None = None
            while full is None or seen[-1] < full + 1000:
                seen += await versions_until(reader, story_id, (seen or [1])[-1] + 50)
                end = server_end(ws_port, stalled)
                assert end is not None
                queued.append(end[1])
                if full is None and len(queued) > 4 and queued[-1] <= queued[-5]:
                    full = seen[-1]
            # The stalled phone wakes up, late, but within the 10 s it has to take its close:
            woken = asyncio.create_task(drain(stalled))
            seen += await versions_until(reader, story_id, 5001)
            await writers
        assert seen == list(range(2, 5002))
        data = await asyncio.wait_for(woken, 30)
        assert re.search(rb"\x88.\x03\xf5", data, re.DOTALL), "no close frame with code 1013"
        assert b'"version":5001' not in data, "the stalled client was sent everything"
    finally:
        stalled.close()


async def fill(store: Store, story: str, ws_port: int, stalled: socket.socket, body: str) -> int:
    """Publish until the gateway's kernel send queue to ``stalled`` stops growing (full), then 16
    entries of ``body`` more: its transport is past 64 KiB and pushes back, while it owes less
    than the 1 MiB that closes it. The story's version then."""
    queued: list[int] = []
    version = await ReadModel(store.client).version(story)
    while len(queued) < 4 or queued[-1] > queued[-4]:
        await publish(store, story, version, body)
        version += 1
        await asyncio.sleep(0.02)  # the gateway tails and writes it
        end = server_end(ws_port, stalled)
        assert end is not None
        queued.append(end[1])
    for _ in range(16):
        await publish(store, story, version, body)
        version += 1
    return version


async def test_a_gateway_stops_in_bounded_time_beside_a_client_that_reads_nothing(
    ws_url: str, redis_url: str, store: Store, story_id: str
) -> None:
    """A client whose transport is full and who reads nothing does not hold up a stopping
    gateway: it is dropped once it has not taken its 1001 for ``STOP_TIMEOUT``. It once waited
    for the client's own 10 s stall and the close after it: websockets' close waits, without
    bound, for the transport to drain. (``ws_url``: the session's projector folds the story.)"""
    client = store_client(redis_url)
    gateway = Gateway(client)
    port = free_port()
    await gateway.start("127.0.0.1", port)
    await projected(store, story_id, await opened(store, story_id))
    stalled = raw_websocket(f"ws://127.0.0.1:{port}/ws", story_id)
    try:
        await asyncio.sleep(0.5)  # it has its snapshot, and reads no more
        body = "<p>" + "Reporters on the ground describe the scene. " * 720 + "</p>"
        await projected(store, story_id, await fill(store, story_id, port, stalled, body))
        await asyncio.sleep(0.2)  # the gateway has tailed and written it all
        await asyncio.wait_for(gateway.stop(), STOP_TIMEOUT + 3)
    finally:
        stalled.close()
        await client.aclose()


async def test_since_in_the_middle_of_a_run_written_together_replays_only_what_follows(
    isolated_url: str,
) -> None:
    """Changes the projector wrote as one run (one stream entry) are replayed and tailed one
    version at a time: ``since`` inside the run gives exactly the versions after it."""
    client = redis.Redis.from_url(isolated_url)
    store = Store(client)
    gateway = Gateway(client)
    port = free_port()
    await gateway.start("127.0.0.1", port)
    try:
        await opened(store, "run", 9)
        await Projector(client, store).project(await store.read("run"))  # one run: 1..10
        assert len(await client.xrange(keys.changes("run")) or []) == 1
        async with connect(f"ws://127.0.0.1:{port}/ws") as c:
            await c.send(orjson.dumps({"op": "subscribe", "story": "run", "since": 4}).decode())
            replayed = [await recv(c) for _ in range(6)]
            assert [f["version"] for f in replayed] == [5, 6, 7, 8, 9, 10]
            assert [f["entry"]["entry_id"] for f in replayed] == [f"e{i}" for i in range(3, 9)]
            for i in range(9, 12):
                await publish(store, "run", i)
            await Projector(client, store).project(await store.read("run", 11))  # a run: 11..13
            assert await versions_until(c, "run", 13) == [11, 12, 13]
    finally:
        await gateway.stop()
        await store.close()


async def test_a_live_subscriber_is_sent_a_change_the_tail_never_read(isolated_url: str) -> None:
    """A change on the story's changes stream that never reached the partition's (a hole in what
    the tail reads) is fetched and sent in order to a subscriber already live: no jump."""
    client = redis.Redis.from_url(isolated_url)
    store = Store(client)
    gateway = Gateway(client)
    port = free_port()
    await gateway.start("127.0.0.1", port)
    try:
        await opened(store, "hole", 2)
        await Projector(client, store).project(await store.read("hole"))  # 1..3
        async with connect(f"ws://127.0.0.1:{port}/ws") as c:
            await c.send(orjson.dumps({"op": "subscribe", "story": "hole"}).decode())
            assert (await recv(c))["version"] == 3
            await publish(store, "hole", 2)
            await Projector(client, store).project(await store.read("hole", 4))
            assert (await recv(c))["version"] == 4  # live
            five, six = (
                orjson.dumps({"type": "change", "story": "hole", "version": v}) for v in (5, 6)
            )
            await client.xadd(keys.changes("hole"), {b"5": five}, id="5-0")
            await client.xadd(keys.changes("hole"), {b"6": six}, id="6-0")
            partition = keys.partition_changes(keys.partition("hole"))
            await client.xadd(partition, {b"s": b"hole", b"6": six})
            assert [(await recv(c))["version"] for _ in range(2)] == [5, 6]
    finally:
        await gateway.stop()
        await store.close()


async def test_a_subscribe_while_the_store_is_away_is_an_error_frame_and_the_connection_stays() -> (
    None
):
    """A gateway whose store cannot be reached answers ``store_unavailable`` and keeps the
    connection open: the client subscribes again once the store is back."""
    gone = free_port()  # nothing listens there
    gateway = Gateway(redis.Redis.from_url(f"redis://127.0.0.1:{gone}/0"))
    port = free_port()
    await gateway.start("127.0.0.1", port)
    try:
        async with connect(f"ws://127.0.0.1:{port}/ws") as c:
            await c.send(orjson.dumps({"op": "subscribe", "story": "away"}).decode())
            frame = orjson.loads(await asyncio.wait_for(c.recv(), 10))
            assert (frame["type"], frame["code"], frame["story"]) == (
                "error",
                "store_unavailable",
                "away",
            )
            await c.send('{"op": "ping"}')
            assert orjson.loads(await asyncio.wait_for(c.recv(), 5)) == {"type": "pong"}
    finally:
        await gateway.stop()


async def test_a_crowd_joining_one_story_shares_its_snapshot_reads(
    ws_url: str, store: Store, client: redis.Redis, story_id: str
) -> None:
    """200 readers subscribing to one story at once, then 50 more once they are live: every one
    gets the snapshot at the head, and the store is asked for it a handful of times, not 250
    (one read in flight is shared; a joiner finds the frame kept while the live set is there)."""
    head = await opened(store, story_id, 20)
    await projected(store, story_id, head)

    async def reads() -> int:
        stats = await client.info("commandstats")
        return int(stats.get("cmdstat_zrevrangebyscore", {}).get("calls", 0))

    async def join(n: int) -> list[ClientConnection]:
        joined = [await connect(ws_url, max_size=None) for _ in range(n)]
        request = orjson.dumps({"op": "subscribe", "story": story_id}).decode()
        await asyncio.gather(*(c.send(request) for c in joined))
        frames = await asyncio.gather(*(recv(c) for c in joined))
        assert {(f["type"], f["version"]) for f in frames} == {("snapshot", head)}
        return joined

    before = await reads()
    crowd = await join(200)
    later = await join(50)
    try:
        asked = await reads() - before
        assert asked <= 10, f"{asked} snapshot reads for 250 joiners"
    finally:
        for c in crowd + later:
            await c.close()


async def test_ops_past_the_burst_are_refused_and_not_performed(ws_url: str) -> None:
    """At the defaults (20 ops a second, bursts of 200), 250 frames at once: 200 performed, the
    other 50 answered ``rate_limited`` and not performed; the connection stays open."""
    async with connect(ws_url) as c:
        for _ in range(250):
            await c.send('{"op": "ping"}')
        replies = [await recv(c) for _ in range(250)]
        kinds = [r.get("code", r["type"]) for r in replies]
        assert kinds.count("pong") == 200
        assert kinds.count("rate_limited") == 50
        await asyncio.sleep(0.2)  # four ops' worth of allowance again
        await c.send('{"op": "ping"}')
        assert await recv(c) == {"type": "pong"}


async def test_a_flood_of_malformed_frames_is_closed_1008(ws_url: str) -> None:
    """10,000 malformed frames as fast as they go: each answered until the flood allowance is
    spent, then the connection is closed with 1008 (policy violation), long before the end."""
    async with connect(ws_url) as c:
        sent = 0
        with contextlib.suppress(ConnectionClosed):
            for _ in range(10_000):
                await c.send("not json")
                sent += 1
        answered = 0
        with contextlib.suppress(ConnectionClosed):  # 1008 is not a normal close
            async for _ in c:  # what was answered before the close
                answered += 1
        assert c.close_code == 1008
        assert answered < 1_000
