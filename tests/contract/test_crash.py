"""Crash safety: SIGKILL ``dateline serve`` mid-write, restart it, and lose nothing acknowledged."""

from __future__ import annotations

import asyncio
import os
import random
import signal
from pathlib import Path

import httpx
import pytest

from events.chain import Envelope, verify
from projections.story import render, replay
from tests.conftest import ADMIN_TOKEN, free_port, start_serve, wait_ready
from tests.faults.workload import history
from tests.services.store.test_embedded import alive, wait_gone

CYCLES = 3


def children(pid: int) -> list[int]:
    """Pids whose parent is ``pid`` (the embedded valkey-server of a serve process)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


async def write_until_refused(
    url: str, story: str, writer: int, cycle: int, acked: dict[str, Envelope]
) -> None:
    """Publish entries one after another until the server stops answering."""
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=5.0) as http:
        for i in range(100_000):
            entry_id = f"w{writer}-{cycle}-{i}"
            body = {
                "type": "entry.published",
                "data": {"body": f"<p>{entry_id}</p>", "entry_id": entry_id},
            }
            try:
                r = await http.post(f"/stories/{story}/events", json=body)
            except httpx.HTTPError:
                return
            if r.status_code != 201:
                return
            acked[entry_id] = Envelope.model_validate_json(r.content)


async def all_pages(http: httpx.AsyncClient, story: str, version: int) -> list[dict]:
    pages, before = [], None
    while True:
        params = {"min_version": version, "limit": 500, **({"before": before} if before else {})}
        r = await http.get(f"/stories/{story}", params=params)
        r.raise_for_status()
        pages.append(r.json())
        before = r.json()["next_before"]
        if before is None:
            return pages


@pytest.fixture
def crash_redis(request: pytest.FixtureRequest) -> str | None:
    """Under CI's external Redis, crash the Dateline process on a database of its own."""
    if os.environ.get("DATELINE_TEST_REDIS_URL"):
        return str(request.getfixturevalue("isolated_url"))
    return None  # the serve process starts (and takes down with it) its own embedded Valkey


async def test_sigkill_during_appends_loses_no_acknowledged_event(
    tmp_path: Path, crash_redis: str | None
) -> None:
    """Three SIGKILLs mid-write: every 201 is stored once, no gap, the chain and projection hold."""
    story = "crash-test"
    acked: dict[str, Envelope] = {}
    data_dir = tmp_path / "data"
    rng = random.Random(7)
    for cycle in range(CYCLES):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = start_serve(crash_redis, data_dir, port)
        try:
            await asyncio.to_thread(wait_ready, proc, url)
            if cycle == 0:
                async with httpx.AsyncClient(
                    base_url=url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
                ) as http:
                    assert (
                        await http.post("/stories", json={"story": story, "title": "Crash"})
                    ).status_code == 201
            writers = [
                asyncio.create_task(write_until_refused(url, story, w, cycle, acked))
                for w in range(4)
            ]
            await asyncio.sleep(rng.uniform(0.4, 1.2))
            valkeys = children(proc.pid)
            os.kill(proc.pid, signal.SIGKILL)
            await asyncio.gather(*writers)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            if proc.stdout:
                proc.stdout.close()
        for pid in valkeys:
            assert await asyncio.to_thread(wait_gone, pid), "valkey-server outlived a killed serve"

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_serve(crash_redis, data_dir, port)
    try:
        await asyncio.to_thread(wait_ready, proc, url)
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30.0) as http:
            events = await history(http, story)
            assert [e.version for e in events] == list(range(1, len(events) + 1))
            assert verify(events).ok
            stored = [e.data["entry_id"] for e in events if e.type == "entry.published"]
            assert len(stored) == len(set(stored)), "an event was applied twice"
            by_version = {e.version: e for e in events}
            for entry_id, envelope in acked.items():
                assert by_version[envelope.version] == envelope, f"acknowledged {entry_id} lost"
            assert len(acked) > 50, "the writers barely wrote: the test proves little"

            state = replay(story, events)
            pages, before = [], None
            for page in await all_pages(http, story, len(events)):
                pages.append(page)
            expected, before = [], None
            while True:
                expected.append(render(state, 500, before))
                before = expected[-1]["next_before"]
                if before is None:
                    break
                before = int(before)
            assert pages == expected
    finally:
        valkeys = children(proc.pid)
        proc.terminate()
        proc.wait(15)
        if proc.stdout:
            proc.stdout.close()
    for pid in valkeys:
        assert await asyncio.to_thread(wait_gone, pid)
    assert not any(alive(p) for p in valkeys)
