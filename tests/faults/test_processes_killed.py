"""Each Dateline process killed at its worst moment (issue 11, 2), by the fault points of
``services/faults.py``, under ``dateline serve``, whose supervisor restarts the dead worker.

- the API dies after an append is stored and before its 201 is written: the writer gets no
  answer and sends the same request again with its Idempotency-Key, and must get the first
  answer, not a second event;
- the projector dies after a batch's state is written and acknowledged, before it settles the
  rest: the restarted one must fold what is pending exactly once;
- the gateway dies after writing a change to half of a story's subscribers: they reconnect with
  ``since`` and must see no gap and no duplicate.

Each run writes with 8 writers to 4 stories watched by 20 readers until the armed worker has
died ``KILLS`` times (the supervisor gives up after 5 deaths a minute, so a run stays under it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, free_port, start_serve, wait_ready
from tests.faults.workload import Reader, Writer, audit, reader_breaks, stop, total

WRITERS = 8
STORIES = 4
READERS = 20
KILLS = 3
"""Deaths of the armed worker a run waits for. The same in soak: the supervisor gives up on a
worker that dies more than 5 times a minute, and the point goes on firing until writes stop."""

POINTS = {
    "api.replying": ("api", "40"),
    "projector.written": ("projector", "30"),
    "gateway.delivering": ("gateway", "150"),
}
"""Each fault point: the worker it kills and the pass it fires at (each restart counts anew)."""


@pytest.mark.parametrize("point", list(POINTS))
async def test_a_process_killed_at_its_worst_moment_doubles_and_loses_nothing(
    point: str, isolated_url: str, tmp_path: Path, figure: Callable[[str, str], None]
) -> None:
    """Kill a worker at its fault point, again and again: no duplicate, projections equal a
    replay, every reader gapless."""
    worker, count = POINTS[point]
    port, ws_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    env = {"DATELINE_FAULT_POINTS": f"{point}={count}"}
    serve = start_serve(isolated_url, tmp_path / "serve", port, ws_port, log, **env)
    stories = [f"worst-{n}" for n in range(STORIES)]
    writers = [Writer(stories[n % STORIES], f"w{n}") for n in range(WRITERS)]
    readers = [Reader(stories[n % STORIES]) for n in range(READERS)]
    deaths = 0
    try:
        await asyncio.to_thread(wait_ready, serve, base)
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30.0) as http:
            for story in stories:
                r = await http.post(
                    "/stories",
                    json={"story": story, "title": "Worst"},
                    headers={"Idempotency-Key": f"open-{story}"},
                )
                assert r.status_code == 201, r.text
            writing, reading = asyncio.Event(), asyncio.Event()
            ws = f"ws://127.0.0.1:{ws_port}/ws"
            tasks = [asyncio.create_task(r.run(ws, reading)) for r in readers]
            await asyncio.sleep(0.5)  # the readers have their snapshots
            tasks += [asyncio.create_task(w.run(base, writing)) for w in writers]
            for _ in range(600):
                deaths = log.read_text().count(f"{worker}: restarting")
                if deaths >= KILLS:
                    break
                await asyncio.sleep(0.1)
            writing.set()  # at once: the armed point fires again while writes go on
            await asyncio.wait_for(asyncio.gather(*tasks[READERS:]), 60)
            heads = {s: 1 + sum(len(w.acked) for w in writers if w.story == s) for s in stories}
            for _ in range(300):
                if all(r.current == heads[r.story] for r in readers):
                    break
                await asyncio.sleep(0.1)
            reading.set()
            await asyncio.wait_for(asyncio.gather(*tasks[:READERS]), 30)
            audits = [
                await audit(http, story, [w for w in writers if w.story == story])
                for story in stories
            ]
    finally:
        output = stop(serve, log)
        print(output[-4000:])
    found = total(audits)
    acked, lost, duplicated = found.acked, found.lost, found.duplicated
    phantoms, breaks, differs = found.unacknowledged, found.chain_breaks, found.projection_differs
    gaps, duplicates, short = reader_breaks(readers, heads)
    broken = sum(r.gaps + r.duplicates > 0 or r.current != heads[r.story] for r in readers)
    wrong = [line for w in writers for line in w.wrong]
    figure(
        f"killed at {point}",
        f"{worker} SIGKILLed {deaths} times at its fault point, {WRITERS} writers: duplicates"
        f" {duplicated}, lost {lost} of {acked} acknowledged, unacknowledged {phantoms}, chain"
        f" breaks {breaks}; stories whose projection differs from a replay {differs} of"
        f" {STORIES}; subscribers who saw a gap or a duplicate {broken} of {READERS}"
        f" (resumes {sum(r.resumes for r in readers)}); requests with no answer"
        f" {sum(w.no_answer for w in writers)}, retried with their keys",
    )
    assert deaths >= KILLS, f"the {worker} died {deaths} times only"
    assert (duplicated, lost, phantoms, breaks, differs) == (0, 0, 0, 0, 0)
    assert wrong == []
    assert (gaps, duplicates, short, broken) == (0, 0, 0, 0)
