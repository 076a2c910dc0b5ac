"""Many subscribers of one story against the running ``dateline serve``: each gets every change.

The shape an independent run found losing subscribers (issue 9, item 3): 500 subscribers join one
story in concurrent batches of 100, then 100 events are published at 20 a second; every one of
them must get every version after its snapshot, in order, with no gap and no duplicate
(CONTRACT.md "Websocket gateway"), and none may be left with its snapshot and nothing after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from dataclasses import dataclass, field

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from services.realtime.backlog import STALL_TIMEOUT
from services.store.record import Store
from tests.services.realtime.test_gateway import drain, opened, projected, publish, raw_websocket

SUBSCRIBERS = 500
BATCH = 100
EVENTS = 100
RATE = 20.0
"""Events a second, as the run that found the loss published them (100 of them: 5 s)."""


@dataclass
class Subscriber:
    """One connection's view: its snapshot version, then every change version, in arrival order."""

    connection: ClientConnection
    snapshot: int = 0
    versions: list[int] = field(default_factory=list)
    closed: int | None = None
    errors: list[str] = field(default_factory=list)
    changing: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once its first change has arrived."""

    async def read(self, last: int, pause: float = 0.0) -> None:
        """Read frames until ``last`` arrives or the connection closes (``pause`` after each)."""
        try:
            while not self.versions or self.versions[-1] < last:
                frame = orjson.loads(await self.connection.recv())
                if pause:
                    await asyncio.sleep(pause)
                if frame["type"] == "change":
                    self.versions.append(frame["version"])
                    self.changing.set()
                elif frame["type"] == "snapshot":
                    self.snapshot, self.versions = frame["version"], []
                else:
                    self.errors.append(frame.get("code", frame["type"]))
        except ConnectionClosed as closed:
            self.closed = closed.rcvd.code if closed.rcvd is not None else 1006


async def join(url: str, story: str) -> Subscriber:
    """Connect, subscribe, and wait for the snapshot."""
    connection = await connect(url, max_size=None, open_timeout=30)
    await connection.send(orjson.dumps({"op": "subscribe", "story": story}).decode())
    frame = orjson.loads(await asyncio.wait_for(connection.recv(), 30))
    subscriber = Subscriber(connection, frame.get("version", 0))
    if frame["type"] != "snapshot":
        subscriber.errors.append(frame.get("code", frame["type"]))
    return subscriber


async def test_500_subscribers_joining_in_batches_each_get_every_change(
    ws_url: str, store: Store, story_id: str
) -> None:
    """500 subscribers join in concurrent batches of 100, then 100 events are published at 20 a
    second: every subscriber receives every version after its snapshot, consecutively."""
    first = await opened(store, story_id, 3)
    await projected(store, story_id, first)
    subscribers: list[Subscriber] = []
    try:
        for _ in range(SUBSCRIBERS // BATCH):
            subscribers += await asyncio.gather(*(join(ws_url, story_id) for _ in range(BATCH)))
        refused = [s.errors for s in subscribers if s.errors]
        assert not refused, f"{len(refused)} of {SUBSCRIBERS} were refused: {refused[:3]}"
        last = first + EVENTS
        readers = [asyncio.create_task(s.read(last)) for s in subscribers]
        for i in range(EVENTS):
            await publish(store, story_id, 100 + i)
            await asyncio.sleep(1 / RATE)
        await asyncio.wait(readers, timeout=10)
        for reader in readers:
            reader.cancel()
        lost = [s for s in subscribers if not s.versions]
        wrong = [s for s in subscribers if s.versions != list(range(s.snapshot + 1, last + 1))]
        assert not lost, (
            f"{len(lost)} of {SUBSCRIBERS} got their snapshot and then no change at all "
            f"(closed: {[s.closed for s in lost]}, errors: {[s.errors for s in lost]})"
        )
        assert not wrong, [(s.snapshot, s.versions[:5], s.closed, s.errors) for s in wrong[:5]]
    finally:
        for s in subscribers:
            with contextlib.suppress(Exception):
                await s.connection.close()


HISTORY = 2_000
"""Changes after ``story.opened`` on the story a late reader resumes on (the finding's 2,001)."""
BEHIND = 1_000
"""How far behind the head it resumes: the changes the contract keeps for exactly this."""
LIVE = 20
"""Changes published while its replay is being sent."""
BODY = "<p>" + "Reporters on the ground describe the scene. " * 180 + "</p>"
"""About 8 kB: the size of the changes in the finding."""


async def long_story(store: Store, story: str) -> int:
    """A story of ``HISTORY + 1`` changes of about 8 kB each, projected; its head."""
    await opened(store, story)

    async def writer(n: int) -> None:
        for i in range(n, HISTORY, 8):
            await publish(store, story, i, BODY)

    await asyncio.gather(*(writer(n) for n in range(8)))
    await projected(store, story, HISTORY + 1)
    return HISTORY + 1


async def test_a_since_replay_of_1000_changes_of_8_kb_arrives_whole_to_a_reader_at_a_normal_pace(
    ws_url: str, store: Store, story_id: str
) -> None:
    """``since`` = head - 1,000 on a story of 8 kB changes: a reader that takes each frame as it
    comes (a millisecond apiece) gets all 1,000, then the changes published meanwhile, in order,
    and is never closed as too slow."""
    head = await long_story(store, story_id)
    since = head - BEHIND
    async with connect(ws_url, max_size=None) as reader:
        subscriber = Subscriber(reader)
        started = time.monotonic()
        await reader.send(
            orjson.dumps({"op": "subscribe", "story": story_id, "since": since}).decode()
        )
        reading = asyncio.create_task(subscriber.read(head + LIVE, pause=0.001))

        async def live() -> None:
            await subscriber.changing.wait()  # the replay is under way
            for i in range(LIVE):
                await publish(store, story_id, HISTORY + i)
                await asyncio.sleep(1 / RATE)

        await asyncio.wait_for(asyncio.gather(reading, live()), 120)
        taken = time.monotonic() - started
    print(
        f"\nsince replay: {len(subscriber.versions)} frames in {taken:.2f} s, "
        f"closed {subscriber.closed}, errors {subscriber.errors}"
    )
    assert subscriber.closed is None, f"closed {subscriber.closed} after {len(subscriber.versions)}"
    assert not subscriber.errors
    assert subscriber.versions == list(range(since + 1, head + LIVE + 1))


async def test_a_reader_that_stops_during_its_replay_is_closed_1013_and_delays_no_one(
    ws_url: str, store: Store, story_id: str
) -> None:
    """A client that asks for the same 1,000 changes and then never reads is closed with 1013
    once it has taken nothing for ``STALL_TIMEOUT`` (its few live changes stay far below the
    budget: only the stall rule can close it), and is not sent everything; a subscriber of the
    same story gets each change published meanwhile, in order, as it is published."""
    head = await long_story(store, story_id)
    async with connect(ws_url, max_size=None) as observer:
        await observer.send(orjson.dumps({"op": "subscribe", "story": story_id}).decode())
        assert orjson.loads(await asyncio.wait_for(observer.recv(), 10))["version"] == head
        stalled = raw_websocket(ws_url, story_id, since=head - BEHIND)
        stalled_at = time.monotonic()
        try:
            await asyncio.sleep(1)  # its replay has filled its transport by now
            lags: list[float] = []
            for i in range(LIVE):
                published = time.monotonic()
                await publish(store, story_id, HISTORY + i)
                frame = orjson.loads(await asyncio.wait_for(observer.recv(), 5))
                assert frame["version"] == head + i + 1
                lags.append(time.monotonic() - published)
                await asyncio.sleep(1 / RATE)
            assert time.monotonic() - stalled_at < STALL_TIMEOUT, "the stalled one is still held"
            await asyncio.sleep(STALL_TIMEOUT + 3 - (time.monotonic() - stalled_at))
            data = await asyncio.wait_for(drain(stalled), 30)  # the stalled one wakes up, late
        finally:
            stalled.close()
    frames = data.count(b'"type":"change"')
    print(
        f"\nstalled replay: {frames} frames of {BEHIND + LIVE} sent before its close; "
        f"the other's lag p50 {sorted(lags)[LIVE // 2] * 1000:.1f} ms, "
        f"max {max(lags) * 1000:.1f} ms"
    )
    assert re.search(rb"\x88.\x03\xf5", data, re.DOTALL), "no close frame with code 1013"
    assert f'"version":{head + LIVE}'.encode() not in data, "the stalled client was sent everything"
