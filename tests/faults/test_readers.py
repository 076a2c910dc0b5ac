"""Readers under faults (issue 11, 7): 200 connections dropped in the middle of a 1,000-event
burst, each reconnecting with ``since`` its last version, see every change once and in order."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson
from websockets.asyncio.client import connect

from events.decide import parse_command, parse_open
from services.store.readmodel import ReadModel
from services.store.record import Store

READERS = 200
BURST = 1_000


@dataclass
class Reader:
    """What one reader saw: its versions in order, and what broke the order."""

    drop_after: int
    versions: list[int] = field(default_factory=list)
    gaps: int = 0
    duplicates: int = 0
    resets: int = 0
    reconnects: int = 0


async def read(ws_url: str, story: str, reader: Reader, last: int) -> None:
    """Follow ``story`` to ``last``; drop the connection once, without a close handshake, after
    ``drop_after`` changes, and resume with ``since`` the last version seen."""
    current: int | None = None
    dropped = False
    while current is None or current < last:
        async with connect(ws_url, max_size=None) as ws:
            ask: dict[str, object] = {"op": "subscribe", "story": story}
            if current is not None:
                ask["since"] = current
                reader.reconnects += 1
            await ws.send(orjson.dumps(ask).decode())
            async for raw in ws:
                frame = orjson.loads(raw)
                if frame["type"] == "snapshot":
                    if current is not None:
                        reader.resets += 1
                    current = frame["version"]
                    continue
                if frame["type"] != "change":
                    continue
                version = frame["version"]
                if current is not None and version > current + 1:
                    reader.gaps += 1
                elif current is not None and version <= current:
                    reader.duplicates += 1
                    continue
                current = version
                reader.versions.append(version)
                if current >= last:
                    return
                if not dropped and len(reader.versions) >= reader.drop_after:
                    dropped = True
                    ws.transport.abort()  # the network drops it: no close frame
                    break


async def test_readers_dropped_mid_burst_resume_with_no_gap_duplicate_or_reorder(
    ws_url: str, store: Store, story_id: str, figure: Callable[[str, str], None]
) -> None:
    """200 readers dropped once mid-burst and resumed with since: no gap, duplicate or reset."""
    await store.append(story_id, parse_open({"story": story_id, "title": "Burst"}), actor="e:a")
    await ReadModel(store.client).wait_for(story_id, 1, 15.0)
    last = 1 + BURST
    rng = random.Random(11)
    readers = [Reader(drop_after=rng.randint(20, BURST - 100)) for _ in range(READERS)]
    tasks = [asyncio.create_task(read(ws_url, story_id, r, last)) for r in readers]
    await asyncio.sleep(1.0)  # every reader has its snapshot
    for n in range(BURST):
        data = {"body": f"<p>Burst {n}</p>", "entry_id": f"b{n}"}
        await store.append(story_id, parse_command("entry.published", data), actor="e:a")
    await asyncio.wait_for(asyncio.gather(*tasks), 120)
    gaps = sum(r.gaps for r in readers)
    duplicates = sum(r.duplicates for r in readers)
    reorders = sum(r.versions != sorted(r.versions) for r in readers)
    resets = sum(r.resets for r in readers)
    figure(
        "readers dropped",
        f"{READERS} readers, {sum(r.reconnects for r in readers)} dropped"
        f" and resumed with since during {BURST} events: gaps {gaps}, duplicates {duplicates},"
        f" reorders {reorders}, reset snapshots {resets}",
    )
    assert all(r.reconnects == 1 for r in readers)
    assert (gaps, duplicates, reorders, resets) == (0, 0, 0, 0)
    assert all(r.versions == list(range(2, last + 1)) for r in readers)
