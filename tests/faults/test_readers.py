"""Readers under faults (issue 11, 7): 200 connections dropped in the middle of a 1,000-event
burst, each reconnecting with ``since`` its last version, see every change once and in order."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from websockets.asyncio.client import connect

from events.decide import parse_command, parse_open
from services.realtime.subscription import MAX_REPLAY
from services.store import keys
from services.store.readmodel import ReadModel
from services.store.record import Store

READERS = 200
BURST = 1_000
KEPT_BURST = 1_800
"""Events before the trimmed readers come: more changes than a story keeps (1,024)."""
TRIMMED_READERS = 50
LIVE = 300


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


async def follow_from(ws_url: str, story: str, since: int, last: int) -> tuple[bool, int, int]:
    """Subscribe with ``since`` and follow to ``last``: (first frame was a reset snapshot,
    gaps, duplicates)."""
    async with connect(ws_url, max_size=None) as ws:
        await ws.send(orjson.dumps({"op": "subscribe", "story": story, "since": since}).decode())
        reset, current, gaps, duplicates = False, since, 0, 0
        first = True
        async for raw in ws:
            frame = orjson.loads(raw)
            if frame["type"] == "snapshot":
                reset = reset or (first and frame.get("reset") is True)
                current = frame["version"]
            elif frame["type"] == "change":
                version = frame["version"]
                if version <= current:
                    duplicates += 1
                    continue
                gaps += version > current + 1
                current = version
            first = False
            if current >= last:
                return reset, gaps, duplicates
    return reset, gaps, duplicates


async def test_a_since_older_than_what_is_kept_gets_a_reset_snapshot_every_time_under_load(
    ws_url: str, store: Store, client: Any, story_id: str, figure: Callable[[str, str], None]
) -> None:
    """Readers asking for changes already trimmed get a reset snapshot, each one, mid-burst;
    readers asking within what is kept get a replay; none sees a gap."""
    await store.append(story_id, parse_open({"story": story_id, "title": "Kept"}), actor="e:a")
    for n in range(KEPT_BURST):
        data = {"body": f"<p>Before {n}</p>", "entry_id": f"k{n}"}
        await store.append(story_id, parse_command("entry.published", data), actor="e:a")
    head = 1 + KEPT_BURST
    await ReadModel(store.client).wait_for(story_id, head, 30.0)
    oldest = await client.xrange(keys.changes(story_id), count=1)
    kept_from = int(oldest[0][0].split(b"-")[0])  # the oldest kept entry's (last) version
    rng = random.Random(5)
    low = max(1, head - MAX_REPLAY + 50)
    # well clear of the oldest entry, which may hold a run of a few versions ending at kept_from
    old = [rng.randint(low, kept_from - 100) for _ in range(TRIMMED_READERS)]
    # and well inside what is still kept when the burst has trimmed LIVE more versions
    recent = [rng.randint(kept_from + LIVE + 100, head - 1) for _ in range(TRIMMED_READERS)]
    last = head + LIVE
    tasks = [asyncio.create_task(follow_from(ws_url, story_id, s, last)) for s in old + recent]

    async def burst() -> None:
        for n in range(LIVE):
            data = {"body": f"<p>During {n}</p>", "entry_id": f"d{n}"}
            await store.append(story_id, parse_command("entry.published", data), actor="e:a")

    await asyncio.gather(burst(), asyncio.wait_for(asyncio.gather(*tasks), 120))
    seen = [t.result() for t in tasks]
    resets_old = sum(reset for reset, _, _ in seen[:TRIMMED_READERS])
    resets_recent = sum(reset for reset, _, _ in seen[TRIMMED_READERS:])
    gaps = sum(g for _, g, _ in seen)
    duplicates = sum(d for _, _, d in seen)
    figure(
        "since older than kept",
        f"{TRIMMED_READERS} readers with since older than the kept changes (from version"
        f" {kept_from} of {head}) during a {LIVE}-event burst: reset snapshots {resets_old} of"
        f" {TRIMMED_READERS}; {TRIMMED_READERS} with since within them: resets {resets_recent};"
        f" gaps {gaps}, duplicates {duplicates}",
    )
    assert resets_old == TRIMMED_READERS
    assert resets_recent == 0
    assert (gaps, duplicates) == (0, 0)
