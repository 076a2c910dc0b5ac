"""``dateline demo``: the sample story played into the running server, and the command end to end."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest

from services.demo.player import DEMO_STORY, KEPT_IN, demo_token, play
from services.demo.sample_story import ENTRIES, STEPS, TITLE_AFTER_LANDFALL
from tests.conftest import ROOT, free_port
from tests.contract.test_crash import children
from tests.services.store.test_embedded import wait_gone


@pytest.fixture
def desk() -> str:
    """A token name of this test's own (keys are scoped to their token)."""
    return f"desk-{uuid.uuid4().hex[:8]}"


async def test_the_demo_plays_a_whole_story_through_the_api(
    redis_url: str, api_url: str, http: httpx.AsyncClient, story_id: str, desk: str, tmp_path: Path
) -> None:
    """About 30 entries land, with a correction, a retraction, pins, key events and embeds."""
    token = await demo_token(redis_url, tmp_path, name=desk)
    lines: list[str] = []
    assert await play(api_url, token, story_id, pace=0, out=lines.append) == len(STEPS)

    r = await http.get(f"/stories/{story_id}", params={"limit": 500, "min_version": len(STEPS)})
    assert r.status_code == 200
    state = r.json()
    entries = state["entries"]
    assert len(entries) == ENTRIES >= 28
    assert all(e["time_label"].endswith(" GMT") for e in entries)
    corrected = [e for e in entries if e["corrections"]]
    assert len(corrected) == 1
    assert "130 km/h" in corrected[0]["body"]
    assert "150 km/h" in corrected[0]["corrections"][0]["note"]
    retracted = [e for e in entries if e["status"] == "retracted"]
    assert len(retracted) == 1
    assert retracted[0]["body"] is None
    assert retracted[0]["retraction"]["note"]
    assert state["pinned"]["entry_id"] == "e24"
    assert len(state["key_events"]) >= 3
    embeds = [m for e in entries for m in e["embeds"]]
    assert {m["kind"] for m in embeds} == {"image", "video", "social", "map", "link"}
    image = next(m for m in embeds if m["kind"] == "image")
    assert image["alt"]
    assert image["url"].startswith("https://upload.wikimedia.org/")
    assert state["title"] == TITLE_AFTER_LANDFALL
    assert state["status"] == "closed"
    assert any(line.startswith("demo: v44 story.closed") for line in lines)

    events = (await http.get(f"/stories/{story_id}/events")).json()["events"]
    assert {e["actor"] for e in events} == {f"editor:{desk}"}
    assert "entry.edited" in {e["type"] for e in events}
    edited = next(e for e in entries if e["entry_id"] == "e09")
    assert "Supermarkets" in edited["body"]
    assert edited["corrections"] == [], "the typo fix is silent"


async def test_a_restarted_demo_posts_nothing_twice(
    redis_url: str, api_url: str, http: httpx.AsyncClient, story_id: str, desk: str, tmp_path: Path
) -> None:
    """Stopped after 12 steps and run again (twice), the story ends with each step exactly once."""
    token = await demo_token(redis_url, tmp_path, name=desk)
    await play(api_url, token, story_id, pace=0, out=lambda _: None, until=12)
    await http.get(f"/stories/{story_id}", params={"min_version": 12})
    again: list[str] = []
    assert await play(api_url, token, story_id, pace=0, out=again.append) == len(STEPS)
    assert not any(line.startswith("demo: v12 ") for line in again), "step 12 was re-sent quietly"
    third: list[str] = []
    await http.get(f"/stories/{story_id}", params={"min_version": len(STEPS)})
    assert await play(api_url, token, story_id, pace=0, out=third.append) == len(STEPS)
    assert third == [f"demo: story {story_id} is complete (version {len(STEPS)}); nothing to play"]

    events = (await http.get(f"/stories/{story_id}/events")).json()["events"]
    assert [e["version"] for e in events] == list(range(1, len(STEPS) + 1))
    keys = Counter(e["idempotency_key"] for e in events)
    assert keys == Counter(f"demo:{story_id}:{s.key}" for s in STEPS)


async def test_the_demo_token_is_kept_and_reused(redis_url: str, desk: str, tmp_path: Path) -> None:
    """The desk's token is written to the data dir (0600) and the next run gets the same one."""
    first = await demo_token(redis_url, tmp_path, name=desk)
    kept = tmp_path / KEPT_IN
    assert kept.read_text().strip() == first
    assert kept.stat().st_mode & 0o777 == 0o600
    assert await demo_token(redis_url, tmp_path, name=desk) == first
    kept.write_text("dl_not-a-token\n")
    replaced = await demo_token(redis_url, tmp_path, name=desk)
    assert replaced != first
    assert kept.read_text().strip() == replaced


def start_demo(data_dir: Path, port: int, ws_port: int) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATELINE_")}
    args = [sys.executable, "-m", "services", "demo", "--pace", "0"]
    args += ["--http-port", str(port), "--ws-port", str(ws_port), "--data-dir", str(data_dir)]
    return subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def lines_of(proc: subprocess.Popen[str]) -> queue.Queue[str]:
    found: queue.Queue[str] = queue.Queue()
    stdout = proc.stdout
    assert stdout is not None
    threading.Thread(target=lambda: [found.put(line) for line in stdout], daemon=True).start()
    return found


def wait_line(found: queue.Queue[str], start: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        line = found.get(timeout=max(deadline - time.monotonic(), 0.01))
        if line.startswith(start):
            return line.strip()


def stop(proc: subprocess.Popen[str]) -> int:
    valkeys = children(proc.pid)
    assert valkeys, "the demo runs an embedded valkey-server"
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(20)
    for pid in valkeys:
        assert wait_gone(pid), f"valkey-server {pid} outlived the demo"
    return code


def test_dateline_demo_serves_the_story_and_stops_cleanly(tmp_path: Path) -> None:
    """`dateline demo --pace 0` prints the reader URL, plays the story, and exits 0 on SIGTERM."""
    port, ws_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_demo(tmp_path, port, ws_port)
    try:
        found = lines_of(proc)
        assert wait_line(found, "reader: ") == f"reader: {base}/live/{DEMO_STORY}"
        deadline = time.monotonic() + 30
        version = 0
        while version < len(STEPS):
            assert time.monotonic() < deadline, f"the demo stalled at version {version}"
            r = httpx.get(f"{base}/stories/{DEMO_STORY}", timeout=5)
            version = r.json()["version"] if r.status_code == 200 else 0
            time.sleep(0.1)
        assert httpx.get(f"{base}/live/{DEMO_STORY}", timeout=5).status_code < 500
        wait_line(found, "demo: done")
        assert stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    again = start_demo(tmp_path, port, ws_port)
    try:
        found = lines_of(again)
        assert "nothing to play" in wait_line(found, f"demo: story {DEMO_STORY} is complete")
        r = httpx.get(f"{base}/stories/{DEMO_STORY}", timeout=5)
        assert r.json()["version"] == len(STEPS)
        assert stop(again) == 0
    finally:
        if again.poll() is None:
            again.kill()
            again.wait()
