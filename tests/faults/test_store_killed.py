"""The store killed under load (issue 11, 1): SIGKILL of the valkey-server at random moments while
8 writers with Idempotency-Keys and a reader per story keep going, then a restart on the same data.

The store is a ``valkey-server`` this test starts on its own data dir with ``appendfsync always``
(the embedded store's setting), under a ``dateline serve --redis`` that is never restarted: the
API, projector and gateway must ride out every outage by themselves. While the store is away the
API answers 503 ``store_unavailable`` with ``Retry-After`` (never a 500, never a hang past the
client's timeout) and the gateway tells each subscriber; once it is back, everything resumes.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from pathlib import Path

import httpx

from services.store.embedded import EmbeddedValkey
from tests.conftest import ADMIN_TOKEN, free_port, start_serve, wait_ready
from tests.faults.conftest import own_store, scaled
from tests.faults.workload import Reader, Writer, audit, reader_breaks, stop, total

pytestmark = own_store

WRITERS = 8
STORIES = 4
CYCLES = scaled(20, 200)
CLIENT_TIMEOUT = 10.0
"""The writers' own timeout: an answer slower than this counts as a hang."""


async def test_the_store_killed_twenty_times_loses_and_doubles_nothing_acknowledged(
    tmp_path: Path, figure: Callable[[str, str], None]
) -> None:
    """Kill -9 the store 20 times under 8 writers: every 201 stored once, readers gapless."""
    valkey = EmbeddedValkey(tmp_path / "store")
    url = valkey.start()
    port, ws_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    serve = start_serve(url, tmp_path / "serve", port, ws_port, log)
    rng = random.Random(1)
    stories = [f"killed-{n}" for n in range(STORIES)]
    writers = [Writer(stories[n % STORIES], f"w{n}") for n in range(WRITERS)]
    readers = [Reader(story) for story in stories]
    outage = 0.0
    try:
        await asyncio.to_thread(wait_ready, serve, base)
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30.0) as http:
            for story in stories:
                r = await http.post("/stories", json={"story": story, "title": "Killed"})
                assert r.status_code == 201, r.text
            writing, reading = asyncio.Event(), asyncio.Event()
            ws = f"ws://127.0.0.1:{ws_port}/ws"
            tasks = [
                asyncio.create_task(w.run(base, writing, timeout=CLIENT_TIMEOUT)) for w in writers
            ]
            tasks += [asyncio.create_task(r.run(ws, reading)) for r in readers]
            for _ in range(CYCLES):
                await asyncio.sleep(rng.uniform(0.2, 0.8))
                assert valkey.process is not None
                valkey.process.kill()  # SIGKILL: no AOF flush, no goodbye
                await asyncio.to_thread(valkey.process.wait)
                down = rng.uniform(0.2, 0.8)
                outage += down
                await asyncio.sleep(down)
                valkey.stop()  # releases the data dir's lock; the process is already gone
                await asyncio.to_thread(valkey.start)
            await asyncio.sleep(1.0)
            writing.set()
            await asyncio.wait_for(asyncio.gather(*tasks[:WRITERS]), 60)
            heads = {s: 1 + sum(len(w.acked) for w in writers if w.story == s) for s in stories}
            for _ in range(300):  # readers catch up to the head they must reach
                if all(r.current == heads[r.story] for r in readers):
                    break
                await asyncio.sleep(0.1)
            reading.set()
            await asyncio.wait_for(asyncio.gather(*tasks[WRITERS:]), 30)
            audits = [
                await audit(http, story, [w for w in writers if w.story == story])
                for story in stories
            ]
    finally:
        output = stop(serve, log)
        valkey.stop()
        print(output[-6000:])
    found = total(audits)
    acked, lost, duplicated = found.acked, found.lost, found.duplicated
    phantoms, breaks, differs = found.unacknowledged, found.chain_breaks, found.projection_differs
    gaps, duplicates, short = reader_breaks(readers, heads)
    wrong = [line for w in writers for line in w.wrong]
    figure(
        "store killed",
        f"{CYCLES} SIGKILLs of the store ({outage:.1f} s down), {WRITERS} writers: acknowledged"
        f" lost {lost} of {acked}, duplicated {duplicated}, unacknowledged {phantoms}, chain"
        f" breaks {breaks}, projections differing from a replay {differs} of {STORIES};"
        f" 503 store_unavailable {sum(w.unavailable for w in writers)}, no answer"
        f" {sum(w.no_answer for w in writers)}, other {len(wrong)}, slowest answer"
        f" {max(w.slowest for w in writers):.2f} s; readers: gaps {gaps}, duplicates {duplicates},"
        f" store_unavailable frames {sum(r.store_errors for r in readers)}, resumes"
        f" {sum(r.resumes for r in readers)}",
    )
    assert acked > 20 * CYCLES, "the writers barely wrote: the test proves little"
    assert (lost, duplicated, phantoms, breaks, differs) == (0, 0, 0, 0, 0)
    assert wrong == []
    assert max(w.slowest for w in writers) < CLIENT_TIMEOUT
    assert sum(w.unavailable for w in writers) > 0, "no write ever met the store away"
    assert (gaps, duplicates, short) == (0, 0, 0), [(r.current, r.refusals[-3:]) for r in readers]
    assert sum(r.store_errors for r in readers) > 0, "no subscriber was told the store was away"
