"""``dateline serve`` as a supervisor: the API, the projector and the gateway in processes of their
own, one Ctrl-C, a dead worker restarted, and nothing left behind when it is killed."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx

from tests.conftest import ADMIN_TOKEN, free_port, start_serve, wait_ready
from tests.contract.test_crash import children
from tests.services.demo.test_player import lines_of, wait_line
from tests.services.store.test_embedded import wait_gone

HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def command_of(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().replace(b"\0", b" ").decode()


def name_of(pid: int) -> str:
    """The process's name as ``ps`` shows it (a worker names itself: ``dl-api``)."""
    with open(f"/proc/{pid}/comm") as f:
        return f.read().strip()


def workers_of(pid: int) -> list[int]:
    """The supervisor's Python workers (its children that are not the valkey-server)."""
    return [c for c in children(pid) if "valkey-server" not in command_of(c)]


def publish(base: str, story: str, entry: str) -> int:
    body = {"type": "entry.published", "data": {"body": f"<p>{entry}</p>", "entry_id": entry}}
    r = httpx.post(f"{base}/stories/{story}/events", json=body, headers=HEADERS, timeout=10)
    assert r.status_code == 201, r.text
    return int(r.json()["version"])


def projected(base: str, story: str, version: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = httpx.get(f"{base}/stories/{story}", timeout=5)
        if r.status_code == 200 and r.json()["version"] >= version:
            return True
        time.sleep(0.05)
    return False


def open_story(base: str, story: str) -> None:
    body = {"story": story, "title": "Supervised"}
    r = httpx.post(f"{base}/stories", json=body, headers=HEADERS, timeout=10)
    assert r.status_code == 201, r.text


def test_serve_runs_each_service_in_a_worker_and_one_sigint_stops_them_all(
    tmp_path: Path, story_id: str
) -> None:
    """Three workers beside the Valkey, each one's lines prefixed, ``ready`` once; a SIGINT to
    the supervisor alone (as a terminal's Ctrl-C) ends every process, exit 0."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_serve(None, tmp_path, port)
    try:
        found = lines_of(proc)
        wait_line(found, "ready")
        wait_ready(proc, base)
        crew = workers_of(proc.pid)
        names = sorted(name_of(c) for c in crew)
        assert names == ["dl-api", "dl-gateway", "dl-projector"], names
        everyone = children(proc.pid)
        assert len(everyone) == 4  # and the embedded Valkey
        open_story(base, story_id)
        assert projected(base, story_id, 1)  # the projector worker folds what the API appends
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0
        for pid in everyone:
            assert wait_gone(pid), f"{command_of(pid)} outlived serve"
        rest = []
        while not found.empty():
            rest.append(found.get())
        assert not any(line.startswith("ready") for line in rest), "ready said twice"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_worker_that_dies_is_restarted_and_the_story_keeps_moving(
    tmp_path: Path, story_id: str
) -> None:
    """SIGKILL the projector worker: serve says so, starts a new one, and what is appended next
    is projected; the API never stopped answering."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_serve(None, tmp_path, port)
    try:
        found = lines_of(proc)
        wait_line(found, "ready")
        open_story(base, story_id)
        assert projected(base, story_id, 1)
        before = set(workers_of(proc.pid))
        (projector,) = (p for p in before if name_of(p) == "dl-projector")
        os.kill(projector, signal.SIGKILL)
        line = wait_line(found, "projector: killed by signal 9")
        assert line == "projector: killed by signal 9; restarting in 1 s"
        wait_line(found, "projector: restarting")
        version = publish(base, story_id, "after-restart")
        assert projected(base, story_id, version), "nothing projects after the restart"
        after = set(workers_of(proc.pid))
        assert len(after) == 3
        assert len(after - before) == 1
    finally:
        proc.terminate()
        proc.wait(20)


def test_serve_killed_with_sigkill_leaves_no_process_behind(tmp_path: Path) -> None:
    """``kill -9`` of the supervisor: the kernel takes its workers and the Valkey down."""
    port = free_port()
    proc = start_serve(None, tmp_path, port)
    try:
        wait_ready(proc, f"http://127.0.0.1:{port}")
        everyone = children(proc.pid)
        assert len(everyone) == 4
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        for pid in everyone:
            assert wait_gone(pid), f"{command_of(pid)} outlived a killed serve"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_http_workers_share_the_port(tmp_path: Path) -> None:
    """``--http-workers 2``: two API processes, and requests are answered by both."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_serve(None, tmp_path, port, DATELINE_HTTP_WORKERS="2")
    try:
        found = lines_of(proc)
        line = wait_line(found, "workers: ")
        assert [w.split(" (")[0] for w in line.removeprefix("workers: ").split(", ")] == [
            "api",
            "api-2",
            "projector",
            "gateway",
        ]
        wait_ready(proc, base)
        names = sorted(name_of(c) for c in workers_of(proc.pid))
        assert names == ["dl-api", "dl-api-2", "dl-gateway", "dl-projector"]
        for _ in range(20):  # fresh connections: the kernel hands them to either worker
            assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
    finally:
        proc.terminate()
        proc.wait(20)
