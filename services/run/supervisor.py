"""``dateline serve``: one command, several processes: the API, the projector and the gateway as
workers under this supervisor, so the default server uses every core.

Rules:
- the supervisor binds the listening sockets first (a port in use is one line and exit 2, and
  nothing starts), then starts the embedded Valkey (unless given a Redis URL) and creates the
  first admin token, and only then forks the workers; each inherits the socket it serves
  (``--http-workers N`` API workers share one HTTP socket: the kernel hands each connection to
  one of them);
- a worker never outlives the supervisor: it is forked with Linux's ``PR_SET_PDEATHSIG``
  (SIGKILL), as the embedded Valkey is (SIGTERM, so it finishes its AOF), so a ``kill -9`` of
  ``serve`` leaves no process behind. Workers sit in their own process group: a Ctrl-C reaches
  the supervisor alone, which stops them in order;
- SIGINT or SIGTERM stops every worker with SIGTERM (each stops cleanly: ``services.run.workers``),
  waits up to ``STOP_TIMEOUT`` for them (then SIGKILL), and stops the Valkey last;
- the embedded Valkey that exits (a full disk makes it exit under ``appendfsync always``: it
  cannot write what it would acknowledge) is started again after a backoff from
  ``RESTART_DELAY`` doubling up to ``STORE_RESTART_MAX``, forever, with its last words printed;
  the workers answer 503 ``store_unavailable`` meanwhile and reconnect by themselves;
- a worker that dies after it was ready is restarted after ``RESTART_DELAY``; one that dies
  ``MAX_RESTARTS`` times within ``RESTART_WINDOW``, or before it was ever ready, stops
  ``serve`` with its exit code: a worker that cannot start is a start that cannot happen;
- each worker's output is the supervisor's, one line at a time, prefixed by its name
  (``api``, ``api-2``, ``projector``, ``gateway``); the demo's player speaks for itself
  (its lines already say ``demo:`` and ``reader:``). ``ready`` is printed once, when every
  worker has said it serves.

The loop is a plain ``selectors`` loop over the workers' pipes and a signal wake-up pipe: the
supervisor does no work of its own, so it needs no event loop.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import selectors
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from events.errors import DatelineError
from services.run import workers
from services.run.serve import (
    Extra,
    bootstrap_admin,
    collect_less,
    know_store,
    listen,
    run_loop,
    say,
)
from services.settings import Settings
from services.store.connection import redacted
from services.store.embedded import EmbeddedValkey

STOP_TIMEOUT = 10.0
"""Seconds the workers have to stop cleanly after SIGTERM before they are killed."""
RESTART_DELAY = 1.0
"""Seconds before a worker that died is started again."""
STORE_POLL = 0.5
"""Seconds between looks at the embedded Valkey (its exit raises no signal the loop waits on)."""
STORE_RESTART_MAX = 30.0
"""The longest wait before the embedded Valkey is started again (the backoff doubles up to it)."""
MAX_RESTARTS = 5
"""Restarts of one worker within ``RESTART_WINDOW`` after which ``serve`` gives up."""
RESTART_WINDOW = 60.0
_PR_SET_PDEATHSIG = 1
_PR_SET_NAME = 15
_READY = b"r"


Report = Callable[[DatelineError], int]
"""How a worker says why it cannot run: its lines on stderr, and its exit code (the command's
own mapping, ``services.cli.errors``, handed down so this room does not import the CLI)."""


@dataclass
class Worker:
    """One worker: what it runs, and the process that runs it now (if any)."""

    name: str
    body: workers.Body
    keeps: tuple[socket.socket, ...]
    """The listening sockets it serves on (the others are closed in it)."""
    prefix: bool = True
    pid: int | None = None
    output: int | None = None
    control: int | None = None
    ready: bool = False
    partial: bytes = b""
    deaths: deque[float] = field(default_factory=deque)
    restart_at: float | None = None


class Supervisor:
    """Forks, watches, restarts and stops the workers of one ``serve``."""

    def __init__(
        self,
        workers_: list[Worker],
        sockets: list[socket.socket],
        report: Report,
        store: EmbeddedValkey | None = None,
    ) -> None:
        self.workers = workers_
        self.store = store
        """The embedded Valkey, watched and restarted like a worker, but never given up on."""
        self.store_restart_at: float | None = None
        self.store_deaths = 0
        """Deaths of the store in a row, without a start that lasted: the backoff's exponent."""
        self.report = report
        self.sockets = sockets
        self.selector = selectors.DefaultSelector()
        self.stopping = False
        self.failed: int | None = None
        """The exit code ``serve`` ends with when a worker could not run."""
        self.announced = False
        self.on_ready: Callable[[], None] = lambda: None
        wake_read, self._wake = os.pipe()
        os.set_blocking(wake_read, False)
        os.set_blocking(self._wake, False)
        self.selector.register(wake_read, selectors.EVENT_READ, None)

    # -- processes ---------------------------------------------------------------------------

    def start(self, worker: Worker) -> None:
        """Fork ``worker``; in the child, run its body and exit (never return)."""
        output_read, output_write = os.pipe()
        control_read, control_write = os.pipe()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child: measured by the tests through its behaviour
            code = 1
            try:
                os.close(output_read)
                os.close(control_read)
                code = self._child(worker, parent, output_write, control_write)
            finally:
                os._exit(code)
        os.close(output_write)
        os.close(control_write)
        for fd in (output_read, control_read):
            os.set_blocking(fd, False)
            self.selector.register(fd, selectors.EVENT_READ, worker)
        worker.pid, worker.output, worker.control = pid, output_read, control_read
        worker.ready, worker.partial, worker.restart_at = False, b"", None

    def _child(self, worker: Worker, parent: int, output: int, control: int) -> int:
        """The worker's process: die with the supervisor, log into its pipe, run, say the code."""
        if sys.platform.startswith("linux"):
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
            libc.prctl(_PR_SET_NAME, f"dl-{worker.name}".encode()[:15])  # as ps shows it
        if os.getppid() != parent:  # the supervisor died before the line above
            return 1
        os.setpgid(0, 0)
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        self.selector.close()
        for other in self.workers:
            for fd in (other.output, other.control):
                if fd is not None:
                    with contextlib.suppress(OSError):
                        os.close(fd)
        for sock in self.sockets:
            if all(sock is not kept for kept in worker.keeps):
                sock.close()
        if self.store is not None:  # the data dir's lock stays with the supervisor alone
            self.store.close_in_child()
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(output, 1)
        os.dup2(output, 2)
        os.close(output)
        sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # a TextIOWrapper
        sys.stderr.reconfigure(line_buffering=True)  # type: ignore[union-attr]

        def ready() -> None:
            os.write(control, _READY)

        collect_less()
        try:
            run_loop(worker.body(ready))
        except DatelineError as error:
            return self.report(error)
        except KeyboardInterrupt:
            return 0
        return 0

    def signal(self, sig: int) -> None:
        """Send ``sig`` to every worker that runs."""
        for worker in self.workers:
            if worker.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, sig)

    # -- the loop ----------------------------------------------------------------------------

    def run(self) -> int:
        """Start every worker and watch them until a signal or a failure; the exit code."""
        previous = {
            sig: signal.signal(sig, self._on_signal)
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD)
        }
        old_wakeup = signal.set_wakeup_fd(self._wake)
        try:
            for worker in self.workers:
                self.start(worker)
            while not self.stopping:
                self._step(self._timeout())
            self._stop()
        finally:
            signal.set_wakeup_fd(old_wakeup)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return self.failed or 0

    def _on_signal(self, sig: int, _frame: object) -> None:
        if sig in (signal.SIGINT, signal.SIGTERM):
            self.stopping = True

    def _timeout(self) -> float | None:
        due = [w.restart_at for w in self.workers if w.restart_at is not None]
        if self.store is not None:  # its death sends no signal we hear: look now and then
            due.append(self.store_restart_at or time.monotonic() + STORE_POLL)
        return max(0.0, min(due) - time.monotonic()) if due else None

    def _step(self, timeout: float | None) -> None:
        """Wait for output, a word, a signal or a restart due; handle what came."""
        for key, _ in self.selector.select(timeout):
            worker = key.data
            if worker is None:  # the signal wake-up pipe
                with contextlib.suppress(BlockingIOError):
                    os.read(key.fd, 512)
            elif key.fd == worker.control:
                self._word(worker)
            else:
                self._pump(worker)
        self._reap()
        self._watch_store()
        now = time.monotonic()
        for worker in self.workers:
            if worker.restart_at is not None and worker.restart_at <= now and not self.stopping:
                say(f"{worker.name}: restarting")
                self.start(worker)

    def _watch_store(self) -> None:
        """The embedded Valkey exited (a full disk makes it exit under ``appendfsync always``):
        say why, loudly, and start it again after a backoff; the workers reconnect by
        themselves and answer 503 ``store_unavailable`` meanwhile. Never given up on: a disk
        that fills tonight is freed tomorrow, and the newsroom's writes then resume."""
        store = self.store
        if store is None or self.stopping:
            return
        now = time.monotonic()
        if self.store_restart_at is None:
            if store.process is None or store.process.poll() is None:
                if store.process is not None and self.store_deaths and store.up_for() > 60:
                    self.store_deaths = 0  # it has lasted: the next death starts the backoff over
                return
            code = store.process.returncode
            self.store_deaths += 1
            delay = min(STORE_RESTART_MAX, RESTART_DELAY * 2 ** (self.store_deaths - 1))
            say(f"store: valkey-server exited with code {code}: {store.last_words()}")
            say(f"store: restarting in {delay:g} s; until then writes are 503 store_unavailable")
            self.store_restart_at = now + delay
            return
        if self.store_restart_at > now:
            return
        self.store_restart_at = None
        store.stop()  # releases the data dir (the process is gone)
        try:
            store.start()
        except DatelineError as error:
            say(f"store: cannot start again: {error.message}")
            self.store_deaths += 1
            delay = min(STORE_RESTART_MAX, RESTART_DELAY * 2 ** (self.store_deaths - 1))
            self.store_restart_at = time.monotonic() + delay
            return
        say("store: valkey-server started again")

    def _word(self, worker: Worker) -> None:
        assert worker.control is not None
        try:
            data = os.read(worker.control, 64)
        except BlockingIOError:
            return
        if not data:
            self._forget(worker.control)
            worker.control = None
            return
        if _READY in data and not worker.ready:
            worker.ready = True
            if not self.announced and all(w.ready for w in self.workers):
                self.announced = True
                self.on_ready()

    def _pump(self, worker: Worker, final: bool = False) -> None:
        """Print the worker's complete lines, prefixed; at its end, what is left too."""
        assert worker.output is not None
        while True:
            try:
                data = os.read(worker.output, 65536)
            except BlockingIOError:
                break
            if not data:
                self._forget(worker.output)
                worker.output = None
                final = True
                break
            worker.partial += data
        *complete, worker.partial = worker.partial.split(b"\n")
        if final and worker.partial:
            complete.append(worker.partial)
            worker.partial = b""
        prefix = f"{worker.name:<9} | " if worker.prefix else ""
        for line in complete:
            say(prefix + line.decode(errors="replace"))

    def _forget(self, fd: int) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(fd)
        os.close(fd)

    def _reap(self) -> None:
        """Collect workers that exited: restart them, or end ``serve`` (worker rules)."""
        for worker in self.workers:
            if worker.pid is None:
                continue
            try:
                pid, status = os.waitpid(worker.pid, os.WNOHANG)
            except ChildProcessError:
                pid, status = worker.pid, 0
            if pid == 0:
                continue
            code = os.waitstatus_to_exitcode(status)
            worker.pid = None
            if worker.output is not None:
                self._pump(worker, final=True)
            if worker.control is not None:
                self._forget(worker.control)
                worker.control = None
            if self.stopping:
                continue
            how = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
            now = time.monotonic()
            worker.deaths.append(now)
            while worker.deaths and worker.deaths[0] < now - RESTART_WINDOW:
                worker.deaths.popleft()
            if not worker.ready and not self.announced:
                say(f"{worker.name}: {how} before it was ready; stopping")
                self.failed, self.stopping = (code if code > 0 else 1), True
            elif len(worker.deaths) > MAX_RESTARTS:
                say(f"{worker.name}: {how}, {len(worker.deaths)} times in a minute; stopping")
                self.failed, self.stopping = 1, True
            else:
                say(f"{worker.name}: {how}; restarting in {RESTART_DELAY:g} s")
                worker.restart_at = now + RESTART_DELAY

    def _stop(self) -> None:
        """SIGTERM every worker, wait up to ``STOP_TIMEOUT`` (printing what they say), SIGKILL."""
        self.signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while any(w.pid is not None for w in self.workers):
            left = deadline - time.monotonic()
            if left <= 0:
                self.signal(signal.SIGKILL)
                deadline = time.monotonic() + STOP_TIMEOUT
            self._step(min(max(left, 0.0), 0.1))
        for worker in self.workers:
            if worker.output is not None:
                self._pump(worker, final=True)


def main(
    settings: Settings, report: Report, *, http_workers: int = 1, extra: Extra | None = None
) -> int:
    """Run ``serve`` (supervisor rules) until SIGINT or SIGTERM; the exit code.

    A start that cannot happen (a port in use, the data dir held, the store unreachable) raises
    its ``DatelineError`` before any worker starts.
    """
    http_socket = listen(settings.host, settings.http_port, "HTTP")
    ws_socket = listen(settings.host, settings.ws_port, "websocket")
    sockets = [http_socket, ws_socket]
    embedded: EmbeddedValkey | None = None
    try:
        url = settings.redis_url
        if url is None:
            embedded = EmbeddedValkey(settings.data_dir, fsync=settings.fsync)
            url = embedded.start()
        run_loop(bootstrap_admin(url, settings))
        store_id = run_loop(know_store(url, settings))  # workers check every append against it
        settings = settings.model_copy(update={"store_id": store_id})
        where = f"embedded Valkey, data in {embedded.data_dir}" if embedded else redacted(url)
        say(f"store: {where}")
        crew = [
            Worker(
                "api" if n == 1 else f"api-{n}", workers.api(settings, url, http_socket),
                (http_socket,),
            )
            for n in range(1, http_workers + 1)
        ]  # fmt: skip
        crew.append(Worker("projector", workers.projector(settings, url), ()))
        crew.append(Worker("gateway", workers.gateway(settings, url, ws_socket), (ws_socket,)))
        if extra is not None:
            crew.append(Worker("demo", workers.beside(extra, url, settings), (), prefix=False))
        supervisor = Supervisor(crew, sockets, report, embedded)

        def announce() -> None:
            base = f"http://{settings.host}:{settings.http_port}"
            say(f"workers: {', '.join(f'{w.name} (pid {w.pid})' for w in crew)}")
            say(f"gateway: {settings.public_ws_url()}")
            say(f"api: {base}")
            say(f"reader pages: {base}/live/<story>")
            say(f"openapi: {base}/openapi.json")
            say("ready")

        supervisor.on_ready = announce
        return supervisor.run()
    finally:
        for sock in sockets:
            sock.close()
        if embedded is not None:
            embedded.stop()
