"""Many subscribers of one story against the running ``dateline serve``: each gets every change.

The shape an independent run found losing subscribers (issue 9, item 3): 500 subscribers join one
story in concurrent batches of 100, then 100 events are published at 20 a second; every one of
them must get every version after its snapshot, in order, with no gap and no duplicate
(CONTRACT.md "Websocket gateway"), and none may be left with its snapshot and nothing after it.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from services.store.record import Store
from tests.services.realtime.test_gateway import opened, projected, publish

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

    async def read(self, last: int) -> None:
        """Read frames until ``last`` arrives or the connection closes."""
        try:
            while not self.versions or self.versions[-1] < last:
                frame = orjson.loads(await self.connection.recv())
                if frame["type"] == "change":
                    self.versions.append(frame["version"])
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
