"""Disk full (issue 11, 6): ``dateline serve`` with its data dir on a small filesystem (a tmpfs
this test mounts, as root) that fills up under 4 writers.

Under ``appendfsync always`` Valkey cannot write what it would acknowledge, so at the first
ENOSPC it exits without answering; the API answers 503 ``store_unavailable``; ``serve``'s
supervisor says why and starts the store again with a backoff. Once space is freed, writes
resume, and every 201 ever given is still in the record, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from services.run.supervisor import RESTART_DELAY
from tests.conftest import ADMIN_TOKEN, free_port, start_serve, wait_ready
from tests.faults.conftest import own_store
from tests.faults.workload import Writer, audit, stop

pytestmark = own_store

SIZE_MIB = 24
"""The filesystem's size: room for Valkey's files and a few thousand entries."""
LEFT_KIB = 768
"""Space left free by the ballast, so that the writers fill it within seconds."""
RESUMED = 40
"""Acknowledged writes after the disk is freed that show writing resumed. The writers then
stop: each append writes its envelope several times (record, feed, idempotency record,
projection, two change streams), so at full speed they fill the freed 24 MiB again within a
few seconds, and a store that dies of it again waits out a longer back-off (a CI run failed
so: 1,400 writes after the first restart, then ENOSPC again, then 16 and 30 s delays)."""
VALKEY_TIME = re.compile(r"^\d+:M (\d\d \w\w\w \d{4} \d\d:\d\d:\d\d\.\d{3}) # (.*)$")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of ``SIZE_MIB`` mounted for the test (skipped where this process cannot mount)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SIZE_MIB}m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if made.returncode != 0:
        reason = f"disk full not tested: cannot mount a tmpfs here ({made.stderr.strip()})"
        if os.environ.get("DATELINE_REQUIRE_MOUNT"):  # CI runs as root: a skip would hide it
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """A ballast file that leaves ``LEFT_KIB`` free on ``disk``."""
    ballast = disk / "ballast"
    stat = os.statvfs(disk)
    free = stat.f_bavail * stat.f_frsize - LEFT_KIB * 1024
    with ballast.open("wb") as f:
        f.write(b"\0" * max(free, 0))
    return ballast


def first_enospc(log: Path) -> float | None:
    """When Valkey first failed to write its append-only file (seconds since the epoch)."""
    if not log.exists():
        return None
    for line in log.read_text(errors="replace").splitlines():
        found = VALKEY_TIME.match(line)
        if found and ("write" in found[2].lower() and "aof" in found[2].lower()):
            at = datetime.strptime(
                found[1], "%d %b %Y %H:%M:%S.%f"
            )  # local time, as Valkey logs it
            return at.timestamp()
    return None


async def first_restart(log: Path) -> float | None:
    """When ``serve`` first said it started the store again (within 30 s), or None."""
    for _ in range(1_500):
        if "store: valkey-server started again" in log.read_text():  # noqa: ASYNC240  # a small local file
            return time.time()
        await asyncio.sleep(0.02)
    return None


async def test_a_full_disk_acknowledges_nothing_it_cannot_keep_and_recovers_when_freed(
    small_disk: Path, tmp_path: Path, figure: Callable[[str, str], None]
) -> None:
    """Fill the store's disk under 4 writers: no 201 after ENOSPC, none lost; freed: writes resume."""
    data = small_disk / "data"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    serve = start_serve(None, data, port, None, log)
    writers = [Writer("full", f"w{n}", body_size=2_000) for n in range(4)]
    try:
        await asyncio.to_thread(wait_ready, serve, base)
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=10) as http:
            assert (
                await http.post("/stories", json={"story": "full", "title": "F"})
            ).status_code == 201
            ballast = fill(small_disk)
            writing = asyncio.Event()
            tasks = [asyncio.create_task(w.run(base, writing)) for w in writers]
            for _ in range(600):
                if "store: valkey-server exited" in log.read_text():
                    break
                await asyncio.sleep(0.05)
            else:
                pytest.fail("the store never met a full disk")
            watching = asyncio.create_task(first_restart(log))
            failed_at = first_enospc(data / "valkey.log")
            during = sum(len(w.acked) for w in writers)
            await asyncio.sleep(2.0)  # the store is down or refused again: the disk is still full
            still = (await http.get("/healthz")).status_code
            ballast.unlink()
            freed, freed_at = time.monotonic(), time.time()
            for _ in range(800):
                if (
                    log.read_text().count("store: valkey-server started again")
                    and (await http.get("/healthz")).status_code == 200
                ):
                    break
                await asyncio.sleep(0.05)
            back = time.monotonic() - freed
            before = sum(len(w.acked) for w in writers)
            for _ in range(100):  # the writers write again: a few are enough to show it
                if sum(len(w.acked) for w in writers) >= before + RESUMED:
                    break
                await asyncio.sleep(0.05)
            writing.set()  # stopped soon: at full speed they fill the freed disk in seconds
            await asyncio.wait_for(asyncio.gather(*tasks), 60)
            after = sum(len(w.acked) for w in writers) - before
            found = await audit(http, "full", writers)
            restarted = await watching
    finally:
        output = stop(serve, log)
        print(output[-3000:])
        with contextlib.suppress(OSError):
            (small_disk / "ballast").unlink()
    assert failed_at is not None, "Valkey's log names no failed write"
    # a 201 whose write was fsynced just before the failed one may still be on its way: a
    # quarter second is far more than the API takes from the store's reply to its own
    # the store started again on the still-full disk may take a write or two into the bytes
    # its torn write gave back: each is fsynced (the audit finds it), so only the 201s between
    # the failure and that restart must be none
    # (the supervisor starts it again RESTART_DELAY after it noticed the death, and says so only
    # once the store answers, which may be after a write or two of the restarted store)
    until = min(restarted or freed_at, freed_at, failed_at + RESTART_DELAY)
    late = sum(at > failed_at + 0.25 for w in writers for at in w.acked_at.values() if at < until)
    unavailable = sum(w.unavailable for w in writers)
    figure(
        "disk full",
        f"a {SIZE_MIB} MiB tmpfs filled under 4 writers after {during} acknowledged entries:"
        f" 201s after the first ENOSPC, until the store was started again, {late};"
        f" /healthz while full {still}; 503 store_unavailable {unavailable}; freed: healthz"
        f" 200 after {back:.1f} s, {after} acknowledged since; acknowledged then lost"
        f" {found.lost} of {found.acked}, duplicated {found.duplicated}, chain breaks"
        f" {found.chain_breaks}",
    )
    assert late == 0
    assert still == 503
    assert (found.lost, found.duplicated, found.unacknowledged, found.chain_breaks) == (0, 0, 0, 0)
    assert not found.projection_differs
    assert after > 0, "writes did not resume once space was freed"
    assert [line for w in writers for line in w.wrong] == []
