"""Starting the services: a start that cannot happen says why and exits, never hangs."""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, free_port


def test_a_port_in_use_is_one_line_on_stderr_and_exit_2(tmp_path: Path) -> None:
    """With its HTTP port taken, serve names the port and exits 2 before starting anything."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "services", "serve", "--http-port", str(port),
             "--ws-port", str(free_port()), "--data-dir", str(tmp_path)],
            cwd=ROOT, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    assert done.returncode == 2
    assert f"cannot listen for HTTP on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "appendonly").exists()  # the store was never started


def test_a_data_dir_held_by_another_server_is_one_line_on_stderr_and_exit_3(
    tmp_path: Path,
) -> None:
    """Its data dir locked by another server, serve waits its start timeout, says why, exits 3."""
    lock = os.open(tmp_path / "dateline.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        done = subprocess.run(
            [sys.executable, "-m", "services", "serve", "--http-port", str(free_port()),
             "--ws-port", str(free_port()), "--data-dir", str(tmp_path)],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    finally:
        os.close(lock)
    assert done.returncode == 3
    assert done.stderr == f"error: another Dateline server is using the data dir {tmp_path}\n"
    assert done.stdout == ""


def test_the_api_alone_needs_a_redis_url() -> None:
    """``dateline api`` without --redis or DATELINE_REDIS_URL is a usage error (exit 2)."""
    done = subprocess.run(
        [sys.executable, "-m", "services", "api"],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
        env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert done.returncode == 2
    assert "--redis" in done.stderr


def test_listening_sockets_turn_nagle_off() -> None:
    """Our sockets ask for TCP_NODELAY, so a 201 is never held back by Nagle's algorithm."""
    from services.run.serve import listen

    sock = listen("127.0.0.1", 0, "HTTP")
    try:
        assert sock.proto == socket.IPPROTO_TCP  # asyncio sets NODELAY on accepted TCP sockets
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        sock.close()
