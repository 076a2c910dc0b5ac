"""Fixtures: a real Redis-protocol server and a real ``dateline serve`` for the whole session.

The server is the embedded Valkey (started here, in a temporary data dir), the server named by
``DATELINE_TEST_REDIS_URL`` (CI runs the suite a second time against Debian's Redis 7), or a
cluster: the one named by ``DATELINE_TEST_REDIS_CLUSTER_URL``, or with ``DATELINE_TEST_CLUSTER=1`` a
3+3 Valkey Cluster started here (``services.store.localcluster``; CI's third pass). No mocks,
no fakes: every test that touches the store talks to it, each on stories of its own.
"""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis as redis_sync
import redis.asyncio as redis
from hypothesis import HealthCheck, settings

from services.store.connection import connect
from services.store.embedded import EmbeddedValkey
from services.store.localcluster import LocalCluster
from services.store.record import Store

ADMIN_TOKEN = "test-admin-token-not-a-secret"

# The shared server writes thousands of events with one token, far past the default write limit
# (20 a second, bursts of 100): every Dateline process the suite starts runs with the limit off,
# unless a test turns it on for its own server (tests/services/http/test_limits.py).
os.environ.setdefault("DATELINE_WRITE_RATE", "0")

# Timing belongs in bench/, never in a test: no per-example deadline and no "too slow" health
# check, which would fail a property on a busy CI machine for reasons that are not the code's.
settings.register_profile("dateline", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("dateline")
ROOT = Path(__file__).resolve().parent.parent
ON_CLUSTER = bool(
    os.environ.get("DATELINE_TEST_CLUSTER") or os.environ.get("DATELINE_TEST_REDIS_CLUSTER_URL")
)
"""Whether this pass runs on a cluster (which has one database: ``isolated_url`` cannot be)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The server under test: ``DATELINE_TEST_REDIS_URL`` or an embedded Valkey."""
    given = os.environ.get("DATELINE_TEST_REDIS_URL") or os.environ.get(
        "DATELINE_TEST_REDIS_CLUSTER_URL"
    )
    if given:
        yield given
        return
    if ON_CLUSTER:
        cluster = LocalCluster(tmp_path_factory.mktemp("cluster"))
        yield cluster.start()
        cluster.stop()
        return
    server = EmbeddedValkey(tmp_path_factory.mktemp("valkey"))
    yield server.start()
    server.stop()


@pytest.fixture(scope="module")
def own_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A 3+3 local cluster of the test module's own, whatever the server under test (for tests
    that fault it, or that need a cluster's whole keyspace to themselves)."""
    cluster = LocalCluster(tmp_path_factory.mktemp("own-cluster"))
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[redis.Redis]:
    """A raw client on the server under test (for looking behind the API's back)."""
    c = connect(redis_url)
    yield c  # type: ignore[misc]  # a cluster client answers the same commands
    await c.aclose()


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[Store]:
    s = Store.from_url(redis_url)
    yield s
    await s.close()


@pytest.fixture
def story_id() -> str:
    """A story id no other test uses."""
    return f"t-{uuid.uuid4().hex[:16]}"


def wait_ready(proc: subprocess.Popen[str], url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"dateline exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError("dateline did not become ready")


def start_serve(
    redis_url: str | None,
    data_dir: Path,
    port: int,
    ws_port: int | None = None,
    log: Path | None = None,
    **env: str,
) -> subprocess.Popen[str]:
    """Start ``dateline serve`` as a child process (so tests can kill it).

    Its output is a pipe the test reads, or the file ``log`` for a long run that nobody reads
    while it lasts (a full pipe would stall the server).
    """
    args = [sys.executable, "-m", "services", "serve", "--http-port", str(port)]
    args += ["--ws-port", str(ws_port or free_port()), "--data-dir", str(data_dir)]
    if redis_url:
        args += ["--redis", redis_url]
    environment = {**os.environ, "DATELINE_ADMIN_TOKEN": ADMIN_TOKEN, **env}
    environment.pop("DATELINE_REDIS_URL", None)
    if log is None:
        return subprocess.Popen(
            args,
            cwd=ROOT,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    with log.open("w") as out:  # the child holds its own copy of the file
        return subprocess.Popen(
            args, cwd=ROOT, env=environment, stdout=out, stderr=subprocess.STDOUT, text=True
        )


def start_api(redis_url: str, port: int, **env: str) -> subprocess.Popen[str]:
    """Start ``dateline api`` alone as a child process, its output discarded."""
    args = [sys.executable, "-m", "services", "api", "--http-port", str(port), "--redis", redis_url]
    environment = {**os.environ, "DATELINE_ADMIN_TOKEN": ADMIN_TOKEN, **env}
    environment.pop("DATELINE_REDIS_URL", None)
    return subprocess.Popen(
        args, cwd=ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


@dataclass(frozen=True)
class Running:
    """A running ``dateline serve``: its HTTP API and websocket URLs."""

    http: str
    ws: str


@pytest.fixture(scope="session")
def server(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """A running ``dateline serve`` (API, projector, gateway) on the server under test."""
    port, ws_port = free_port(), free_port()
    proc = start_serve(redis_url, tmp_path_factory.mktemp("serve"), port, ws_port)
    running = Running(f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{ws_port}/ws")
    try:
        wait_ready(proc, running.http)
        yield running
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout:
            proc.stdout.close()


@pytest.fixture(scope="session")
def api_url(server: Running) -> str:
    """The running API's base URL."""
    return server.http


@pytest.fixture(scope="session")
def ws_url(server: Running) -> str:
    """The running gateway's websocket URL."""
    return server.ws


@pytest.fixture
async def http(api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the running API, authenticated as the bootstrap admin."""
    async with httpx.AsyncClient(
        base_url=api_url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=15.0
    ) as c:
        yield c


@pytest.fixture(scope="session")
def editor_token(api_url: str) -> str:
    """An editor token, created through the API."""
    r = httpx.post(
        f"{api_url}/tokens",
        json={"role": "editor", "name": f"ed-{uuid.uuid4().hex[:8]}"},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    r.raise_for_status()
    return str(r.json()["token"])


@pytest.fixture(scope="session")
def auditor_token(api_url: str) -> str:
    """An auditor token, created through the API."""
    r = httpx.post(
        f"{api_url}/tokens",
        json={"role": "auditor", "name": f"au-{uuid.uuid4().hex[:8]}"},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    r.raise_for_status()
    return str(r.json()["token"])


@pytest.fixture
def sync_client(redis_url: str) -> Iterator[redis_sync.Redis]:
    c = (
        redis_sync.RedisCluster.from_url(redis_url)
        if ON_CLUSTER
        else redis_sync.Redis.from_url(redis_url)
    )
    yield c  # type: ignore[misc]  # a cluster client answers the same commands
    c.close()


_next_db = itertools.cycle(range(1, 16))
"""Databases 1..15 in turn (a server has 16 by default): each is flushed after its test, so a
database is reused fifteen tests later."""


def with_db(url: str, db: int) -> str:
    """The same server, another logical database."""
    if url.startswith("unix://"):
        return f"{url.split('?', 1)[0]}?db={db}"
    base = url.rsplit("/", 1)[0] if url.count("/") > 2 else url
    return f"{base}/{db}"


@pytest.fixture
def isolated_url(redis_url: str) -> Iterator[str]:
    """A flushed database of its own on the server under test.

    For tests that run projectors of their own: the session's ``dateline serve`` keeps its
    projector on database 0, and would otherwise share (and race) their feeds.
    """
    if ON_CLUSTER:
        pytest.skip("a cluster has one database, and this test needs a store of its own")
    db = next(_next_db)
    url = with_db(redis_url, db)
    c = redis_sync.Redis.from_url(url)
    c.flushdb()
    try:
        yield url
    finally:
        c.flushdb()
        c.close()
