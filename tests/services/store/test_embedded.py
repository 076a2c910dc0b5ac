"""The embedded Valkey: durable, alone on its data dir, and never orphaned."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from events.errors import StoreUnavailable
from services.store.embedded import EmbeddedValkey

ROOT = Path(__file__).resolve().parents[3]


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_data_survives_a_restart_on_the_same_dir(tmp_path: Path) -> None:
    """What was written before a stop is there after a start: the append-only file is kept."""
    with EmbeddedValkey(tmp_path) as server:
        redis.Redis.from_url(server.url).set("k", "v")
    assert (tmp_path / "appendonly").is_dir()
    with EmbeddedValkey(tmp_path) as server:
        c = redis.Redis.from_url(server.url)
        assert c.get("k") == b"v"
        assert c.config_get("appendfsync") == {"appendfsync": "always"}


def test_two_servers_cannot_share_a_data_dir(tmp_path: Path) -> None:
    """A second server on a data dir in use is refused, not started beside the first."""
    with EmbeddedValkey(tmp_path), pytest.raises(StoreUnavailable, match="data dir"):
        EmbeddedValkey(tmp_path).start(timeout=0.5)


def test_a_data_dir_that_cannot_be_made_is_store_unavailable(tmp_path: Path) -> None:
    """A data dir under a plain file cannot be created: ``StoreUnavailable`` naming it."""
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreUnavailable, match="cannot use the data dir"):
        EmbeddedValkey(tmp_path / "file" / "data").start(timeout=0.5)


def test_valkey_does_not_outlive_a_parent_killed_with_sigkill(tmp_path: Path) -> None:
    """SIGKILL the process that started Valkey: the kernel takes Valkey down with it."""
    code = (
        "import sys, time; from services.store.embedded import EmbeddedValkey; "
        f"v = EmbeddedValkey({str(tmp_path)!r}); v.start(); "
        "print(v.process.pid, flush=True); time.sleep(60)"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert alive(child)
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    assert wait_gone(child), f"valkey-server {child} outlived its parent"
    with EmbeddedValkey(tmp_path):  # and the data dir is free again
        pass
