"""The store restarted empty under running services (issue 11, 5): its data dir wiped, the server
started again with nothing. Dateline must fail loudly and say why, never take the empty store for
a new one (a story's version 1 reused), and recover by itself once the data is back."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import redis.asyncio as redis

from events.chain import verify
from services.store import keys
from services.store.embedded import EmbeddedValkey
from tests.conftest import ADMIN_TOKEN, ROOT, free_port, start_serve, wait_ready
from tests.faults.conftest import own_store
from tests.faults.workload import history, stop

pytestmark = own_store

HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def health(
    http: httpx.AsyncClient, until: Callable[[httpx.Response], bool]
) -> httpx.Response:
    """``/healthz`` once it answers as ``until`` wants (within 15 s), and how long that took."""
    deadline = time.monotonic() + 15
    while True:
        try:
            r = await http.get("/healthz")
            if until(r) or time.monotonic() > deadline:
                return r
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.1)


def entry(n: int) -> dict[str, object]:
    return {"type": "entry.published", "data": {"body": f"<p>{n}</p>", "entry_id": f"e{n}"}}


async def test_a_store_emptied_under_running_services_is_refused_loudly_then_recovered(
    tmp_path: Path, figure: Callable[[str, str], None]
) -> None:
    """Wipe the store under serve: 503 saying why, no version 1 again; data back: writes resume."""
    data = tmp_path / "store"
    valkey = EmbeddedValkey(data)
    url = valkey.start()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    serve = start_serve(url, tmp_path / "serve", port, None, log)
    try:
        await asyncio.to_thread(wait_ready, serve, base)
        async with httpx.AsyncClient(base_url=base, headers=HEADERS, timeout=10) as http:
            assert (
                await http.post("/stories", json={"story": "wiped", "title": "W"})
            ).status_code == 201
            for n in range(5):
                assert (await http.post("/stories/wiped/events", json=entry(n))).status_code == 201

            valkey.stop()  # the store goes, and comes back with nothing
            shutil.move(data, tmp_path / "saved")
            valkey = EmbeddedValkey(data)
            valkey.start()
            began = time.monotonic()
            sick = await health(http, lambda r: r.status_code == 503 and "lost" in r.text)
            noticed = time.monotonic() - began
            reopen = await http.post("/stories", json={"story": "wiped", "title": "Again"})
            fresh = await http.post("/stories", json={"story": "fresh", "title": "New"})
            write = await http.post("/stories/wiped/events", json=entry(99))
            empty = redis.Redis.from_url(url)
            try:
                marks = [await empty.get(keys.mark(p)) for p in range(keys.partitions())]
                records = await empty.exists(
                    *(f(story) for story in ("wiped", "fresh") for f in (keys.events, keys.head))
                )
            finally:
                await empty.aclose()

            # a serve started on the emptied store refuses to start, and says why
            again = subprocess.run(  # noqa: ASYNC221  # the test waits for it on purpose
                [sys.executable, "-m", "services", "serve", "--redis", url,
                 "--data-dir", str(tmp_path / "serve"),
                 "--http-port", str(free_port()), "--ws-port", str(free_port())],
                cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
                env={"PATH": "", "DATELINE_ADMIN_TOKEN": ADMIN_TOKEN},
            )  # fmt: skip

            valkey.stop()  # the data comes back
            shutil.rmtree(data)
            shutil.move(tmp_path / "saved", data)
            valkey = EmbeddedValkey(data)
            valkey.start()
            began = time.monotonic()
            well = await health(http, lambda r: r.status_code == 200)
            recovered = time.monotonic() - began
            after = await http.post("/stories/wiped/events", json=entry(5))
            events = await history(http, "wiped")
    finally:
        output = stop(serve, log)
        valkey.stop()
        print(output[-3000:])
    refused = [r for r in (fresh, write) if r.status_code == 503]
    figure(
        "store emptied",
        f"healthz said why after {noticed:.1f} s ({sick.json()['error']['message'][:60]}...);"
        f" writes refused {len(refused)} of 2 with 503 store_unavailable (details.store lost),"
        f" reopening a known story {reopen.status_code}, version 1 reused 0, keys of the record written to the empty store {records};"
        f" serve restarted on it exited {again.returncode}; data back: healthz 200 after"
        f" {recovered:.1f} s, next write version {after.json().get('version')}, chain verifies",
    )
    assert sick.status_code == 503
    assert sick.json()["error"]["code"] == "store_unavailable"
    assert sick.json()["error"]["details"]["store"] == "lost"
    assert reopen.status_code == 409  # the server knows the story: refused before the store
    for r in (fresh, write):
        assert r.status_code == 503, r.text
        assert r.json()["error"]["details"]["store"] == "lost"
        assert r.headers["Retry-After"].isdigit()
    assert marks == [None] * keys.partitions(), "a running server took the empty store for new"
    assert records == 0
    assert again.returncode == 3, again.stdout + again.stderr
    assert "emptied or replaced" in again.stdout + again.stderr
    assert well.status_code == 200
    assert after.status_code == 201, after.text
    assert after.json()["version"] == 7
    assert [e.version for e in events] == list(range(1, 8))
    assert verify(events).ok
