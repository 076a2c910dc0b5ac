"""What every benchmark shares: options, a fresh embedded Valkey, child processes, numbers, tables.

Rules:
- every bench starts its own Valkey in a temporary dir (``appendfsync always``, the product's
  default, unless ``--fsync everysec``) and removes it afterwards, so runs never see each other's
  data;
- child processes (Valkey, API servers) are started in their own process group with Linux's
  ``PR_SET_PDEATHSIG``: they are stopped by us on any exit (Ctrl-C and SIGTERM included), and by
  the kernel if we are killed outright;
- servers are started and stopped outside the event loop, so a failure inside a measurement
  still reaches the ``finally`` that stops them;
- a target is a ratio of ours to a baseline measured in the same run, or an absolute threshold
  with that baseline shown beside it (``bench/floors.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis as redis_sync

from bench.floors import Floor
from services.run.serve import collect_less, run_loop
from services.store import keys
from services.store.embedded import EmbeddedValkey, die_with_parent

ROOT = Path(__file__).resolve().parent.parent
STORIES = 100
ACTOR = "admin:bootstrap"
TOKEN = "bench-admin-token-not-a-secret"
WRITE_RATE = "1000000"
"""Every Dateline process a bench starts checks each write against its token's allowance, as a
newsroom's does, at a rate no bench reaches: the check's cost is measured, never a 429."""
os.environ.setdefault("DATELINE_WRITE_RATE", WRITE_RATE)


# -- options ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Options:
    quick: bool
    fsync: str
    strict: bool
    json_out: Path | None
    extra: argparse.Namespace


def parse_options(
    description: str,
    argv: Sequence[str] | None = None,
    parser: argparse.ArgumentParser | None = None,
    fsync: str = "always",
) -> Options:
    """The options every bench takes (``--quick``, ``--fsync``, ``--strict``, ``--json``);
    ``fsync`` is this bench's default ``appendfsync``."""
    parser = parser or argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--quick", action="store_true", help="small sizes: a smoke run of a few seconds"
    )
    parser.add_argument(
        "--fsync",
        choices=("always", "everysec"),
        default=fsync,
        help=f"the embedded Valkey's appendfsync (default {fsync}; always is the product's)",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when any target is missed")
    parser.add_argument("--json", dest="json_out", type=Path, help="also write the checks here")
    args = parser.parse_args(argv)
    return Options(args.quick, args.fsync, args.strict, args.json_out, args)


# -- processes ----------------------------------------------------------------------------------


def _terminate_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt so every ``finally`` (and ``with``) runs."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    with contextlib.suppress(ValueError):  # not the main thread
        signal.signal(signal.SIGTERM, handler)


class Children:
    """Child processes stopped together on exit: SIGTERM to each group, SIGKILL after a wait."""

    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(
        self,
        name: str,
        argv: Sequence[str],
        env: dict[str, str] | None = None,
        log: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 - closed by the child's exit
        proc = subprocess.Popen(
            list(argv),
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
            close_fds=True,
        )
        if log:
            out.close()  # type: ignore[union-attr]  # a file here, not None: opened above
        self.procs.append((name, proc))
        return proc

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.procs = [(n, p) for n, p in self.procs if p is not proc]

    def close(self) -> None:
        for _, proc in reversed(list(self.procs)):
            self.stop(proc)

    def __enter__(self) -> Children:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def raise_fd_limit() -> int:
    """Raise this process's open-files limit to its hard limit (children inherit it); the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def rss_bytes(pid: int) -> int:
    """A process's resident set size (``VmRSS`` of ``/proc/PID/status``, Linux), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def _wait(
    proc: subprocess.Popen[bytes],
    log: Path | None,
    timeout: float,
    ready: Callable[[], bool],
    what: str,
) -> None:
    """Poll ``ready`` until it holds; fail with the child's log if it exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"server exited with {proc.returncode} before it was ready:\n{tail}")
        if ready():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} within {timeout:.0f} s")


def wait_tcp(
    proc: subprocess.Popen[bytes], port: int, log: Path | None, timeout: float = 30.0
) -> None:
    """Wait until something listens on ``127.0.0.1:port``, or fail with the child's log."""

    def listening() -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return True
        return False

    _wait(proc, log, timeout, listening, f"nothing listened on port {port}")


def wait_http(
    proc: subprocess.Popen[bytes], url: str, log: Path | None, timeout: float = 30.0
) -> None:
    """Wait until ``url`` answers 200, or fail with the child's log."""

    def answers() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1.0) as answer:  # noqa: S310 - our own loopback URL
                return bool(answer.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    _wait(proc, log, timeout, answers, f"{url} did not answer 200")


def split_commands(url: str, http_port: int, ws_port: int) -> dict[str, list[str]]:
    """The split layout's three commands on the store at ``url``: api, projector, gateway."""
    run, redis = [sys.executable, "-m", "services"], ["--redis", url]
    return {
        "api": [*run, "api", *redis, "--http-port", str(http_port)],
        "projector": [*run, "projector", *redis],
        "gateway": [
            *run, "gateway", *redis, "--ws-port", str(ws_port), "--http-port", str(http_port)
        ],
    }  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def valkey(fsync: str) -> Iterator[str]:
    """A fresh embedded Valkey in a temporary dir, removed afterwards; yields its URL.

    Automatic AOF rewrites are off: a rewrite forks a child that competes for the two cores, and
    it would land on whichever configuration happens to run then (ours or a floor), which made
    ratios swing between runs. Every append still goes to the AOF with the same fsync policy.
    """
    root = Path(tempfile.mkdtemp(prefix="dateline-bench-"))
    server = EmbeddedValkey(root / "valkey", fsync=fsync)
    try:
        url = server.start()
        with redis_sync.Redis.from_url(url) as admin:
            admin.config_set("auto-aof-rewrite-percentage", 0)
        yield url
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="dateline-bench-"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


# -- the workload -------------------------------------------------------------------------------


def story_ids(prefix: str, n: int = STORIES) -> list[str]:
    return [f"{prefix}-{i:03d}" for i in range(n)]


PUBLISH = {
    "body": "<p>Rescue teams reached the collapsed building at 18:40 GMT.</p>",
    "headline": "Rescue teams arrive",
}
"""The ``data`` of the ``entry.published`` every bench appends (envelope about 500 bytes)."""

LONG_PUBLISH = {
    "body": "<p>"
    + 'Rescue teams reached the building at 18:40 GMT, <a href="https://example.org/a">officials said</a>. '
    * 12
    + "</p><ul><li>one</li><li>two</li></ul>",
    "headline": "Rescue teams arrive",
}
"""A longer entry (1.4 KB body, 12 links), for information: body checks grow with the body."""


# -- numbers ------------------------------------------------------------------------------------


def percentile(ordered: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of sorted values, interpolated linearly; NaN when empty."""
    if not ordered:
        return math.nan
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    return percentile(sorted(values), 50)


@dataclass(slots=True)
class Run:
    """One measured configuration: operations done, wall time, and per-operation latencies."""

    name: str
    count: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds, any order
    rates: list[float] = field(default_factory=list)  # one per round
    note: str = ""
    cpu: float = 0.0  # seconds of CPU of the process driving the load
    server_cpu: float = 0.0  # seconds of CPU of the Valkey server

    def add_round(
        self,
        count: int,
        seconds: float,
        latencies: Sequence[float] = (),
        cpu: float = 0.0,
        server_cpu: float = 0.0,
    ) -> None:
        self.count += count
        self.seconds += seconds
        self.latencies.extend(latencies)
        self.rates.append(count / seconds if seconds else 0.0)
        self.cpu += cpu
        self.server_cpu += server_cpu

    def us_per_op(self, cpu: float) -> float:
        return cpu / self.count * 1e6 if self.count else math.nan

    @property
    def rate(self) -> float:
        """Operations per second: the median of the rounds' rates (one round: its rate)."""
        return median(self.rates) if self.rates else math.nan

    def ms(self, q: float) -> float:
        return percentile(sorted(self.latencies), q) * 1000


async def valkey_cpu(client: Any) -> float:
    """Seconds of CPU the server has used (INFO cpu): to tell its share of a cost from ours."""
    info = await client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def process_cpu(pid: int) -> float:
    """Seconds of CPU a process (not its children) has used, from /proc (Linux); NaN elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> dict[int, str]:
    """Every live descendant of a process, as pid -> its name (``comm``), from /proc (Linux).

    ``dateline serve`` forks its workers (named ``dl-api``, ``dl-projector``, ``dl-gateway``), so
    what the layout costs is the supervisor and these.
    """
    parents: dict[int, list[int]] = {}
    names: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        close = stat.rindex(")")
        child = int(entry.name)
        names[child] = stat[stat.index("(") + 1 : close]
        parents.setdefault(int(stat[close + 2 :].split()[1]), []).append(child)
    found: dict[int, str] = {}
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found[child] = names[child]
            todo.append(child)
    return found


def layout_cpu(pids: Sequence[int]) -> float:
    """Seconds of CPU used by these processes and every live descendant of theirs (a whole
    layout: the three split processes, or ``serve``'s supervisor and its workers)."""
    every = set(pids)
    for pid in pids:
        every.update(descendants(pid))
    return sum(value for value in map(process_cpu, every) if not math.isnan(value))


def wait_line(proc: subprocess.Popen[bytes], log: Path, line: str, timeout: float = 30.0) -> None:
    """Wait until the child's log has ``line`` on a line of its own (``serve`` prints ``ready``
    once every worker serves), or fail with the log."""

    def said() -> bool:
        return log.exists() and line in log.read_text(errors="replace").splitlines()

    _wait(proc, log, timeout, said, f"the server did not say {line!r}")


# -- the projector's feeds ----------------------------------------------------------------------


def feeds_backlog(store: redis_sync.Redis) -> int:
    """Events on the projector's feeds that its group has not yet acknowledged: pending (read,
    not acknowledged) plus lag (not yet read; 1 when Valkey cannot count it but the group is
    behind the feed's last entry). 0: the projection has caught up with every append."""
    total = 0
    for p in range(keys.partitions()):
        feed = keys.feed(p)
        if not store.exists(feed):
            continue
        last = store.xinfo_stream(feed)["last-generated-id"]
        for group in store.xinfo_groups(feed):
            name = group["name"]
            if (name.decode() if isinstance(name, bytes) else name) != keys.GROUP:
                continue
            lag = group.get("lag")
            behind = group["last-delivered-id"] != last
            total += int(group["pending"]) + (int(lag) if lag is not None else int(behind))
    return total


def wait_drained(store: redis_sync.Redis, timeout: float = 300.0) -> float:
    """Wait until ``feeds_backlog`` is 0; the seconds it took. A round of ours starts only then,
    so no round pays for folding what an earlier one appended."""
    began = time.monotonic()
    while feeds_backlog(store):
        if time.monotonic() - began > timeout:
            raise RuntimeError(f"the projector did not drain its feeds within {timeout:.0f} s")
        time.sleep(0.02)
    return time.monotonic() - began


def skip_backlog(store: redis_sync.Redis) -> None:
    """Move the projectors' group to the end of every feed (created there if missing), with no
    projector running: what ``dateline api`` alone appended is never folded, so the next layout's
    projector starts with nothing to catch up on."""
    for p in range(keys.partitions()):
        feed = keys.feed(p)
        added = int(store.xinfo_stream(feed)["entries-added"]) if store.exists(feed) else 0
        try:
            store.xgroup_create(feed, keys.GROUP, id="$", mkstream=True, entries_read=added)
        except redis_sync.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise
            store.xgroup_setid(feed, keys.GROUP, "$", entries_read=added)


# -- printing -----------------------------------------------------------------------------------

try:
    from rich.console import Console
    from rich.table import Table

    # Wide enough for the tables when the output is a file or a pipe (rich's default is 80).
    _console: Console | None = Console(highlight=False, width=None if sys.stdout.isatty() else 132)
except ImportError:  # pragma: no cover - rich is a dependency; plain text otherwise
    _console = None


def say(text: str) -> None:
    if _console is not None:
        _console.print(text, markup=False)
    else:
        print(text, flush=True)


def fmt(value: float, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Print a table: rich when available, aligned plain text otherwise."""
    if _console is not None:
        t = Table(title=title, title_justify="left")
        for n, name in enumerate(columns):
            t.add_column(name, justify="left" if n == 0 else "right")
        for row in rows:
            t.add_row(*row)
        _console.print(t)
        return
    widths = [max(len(str(c)), *(len(str(r[n])) for r in rows)) for n, c in enumerate(columns)]
    print(title)
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)))
    print(flush=True)


def runs_table(
    title: str, runs: Sequence[Run], unit: str = "events/s", against: Run | None = None
) -> None:
    """Rate, p50 and p99 of each run, and its rate as a ratio to ``against`` when given."""
    columns = ["measure", "ops", unit, "p50 ms", "p99 ms"]
    if against is not None:
        columns.append(f"x {against.name}")
    cpu = any(run.cpu or run.server_cpu for run in runs)
    if cpu:
        columns += ["our CPU us/op", "Valkey CPU us/op"]
    rows = []
    for run in runs:
        row = [
            run.name + (f" ({run.note})" if run.note else ""),
            fmt(run.count),
            fmt(run.rate),
            fmt(run.ms(50), 3),
            fmt(run.ms(99), 3),
        ]
        if against is not None:
            row.append(fmt(run.rate / against.rate, 2) if against.rate else "-")
        if cpu:
            row += [fmt(run.us_per_op(run.cpu), 1), fmt(run.us_per_op(run.server_cpu), 1)]
        rows.append(row)
    table(title, columns, rows)


@dataclass(frozen=True, slots=True)
class Check:
    """A target compared: ours and the baseline's value, their ratio, and whether it passes."""

    floor: Floor
    label: str
    ours: float
    baseline: float
    unit: str

    @property
    def ratio(self) -> float:
        return self.ours / self.baseline if self.baseline else math.nan

    @property
    def measured(self) -> float:
        """What the target holds: ours itself for an absolute floor, else the ratio."""
        return self.ours if self.floor.unit else self.ratio

    @property
    def passed(self) -> bool:
        return not math.isnan(self.measured) and self.floor.passes(self.measured)

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.floor.key,
            "label": self.label,
            "ours": self.ours,
            "baseline": self.baseline,
            "unit": self.unit,
            "ratio": self.ratio,
            "target": self.floor.target,
            "sense": self.floor.sense,
            "absolute": self.floor.unit is not None,
            "measured": self.measured,
            "wanted": self.floor.wanted,
            "passed": self.passed,
        }


DIGITS = {"ms": 3, "s": 3, "KB": 1}
"""Decimals shown per unit in the targets table (0 for the rest: rates)."""


def checks_table(title: str, checks: Sequence[Check]) -> None:
    rows = [
        [
            c.label,
            f"{fmt(c.ours, DIGITS.get(c.unit, 0))} {c.unit}",
            f"{fmt(c.baseline, DIGITS.get(c.unit, 0))} {c.unit}"
            if c.baseline and not math.isnan(c.baseline)
            else "-",
            "-" if math.isnan(c.ratio) else fmt(c.ratio, 2) + "x",
            c.floor.wanted,
            "PASS" if c.passed else "MISS",
        ]
        for c in checks
    ]
    table(title, ["target", "ours", "baseline", "ratio", "wanted", "result"], rows)
    for floor in dict.fromkeys(c.floor for c in checks):
        say(f"  {floor.key}: {floor.ours} vs {floor.baseline}, {floor.wanted}; why: {floor.why}")


def finish(options: Options, checks: Sequence[Check]) -> int:
    """Write the checks if asked and return the exit code (1 on a miss only with --strict)."""
    if options.json_out is not None:
        options.json_out.write_text(json.dumps([c.to_json() for c in checks], indent=1))
    return 1 if options.strict and not all(c.passed for c in checks) else 0


def main_wrapper(body: Any) -> int:
    """Run a bench's ``body()`` with SIGTERM treated like Ctrl-C; 130 when interrupted.

    The bench process takes the garbage collector policy of the service processes
    (``services.run.serve.collect_less``): what runs in-process here (the projector, stores) runs as
    it does in ``dateline serve``, and the floors beside it run under the same policy.
    """
    collect_less()
    _terminate_on_sigterm()
    try:
        return int(body())
    except KeyboardInterrupt:
        say("interrupted: servers stopped")
        return 130


def on_own_valkey(description: str, measure: Any, argv: Sequence[str] | None) -> int:
    """The main of a bench that needs only a fresh embedded Valkey: ``measure(url, options)``."""
    options = parse_options(description, argv)

    def body() -> int:
        with valkey(options.fsync) as url:
            checks = run_loop(
                measure(url, options)
            )  # the services' event loop, for ours and floors
        return finish(options, checks)

    return main_wrapper(body)


def machine_line(options: Options) -> str:
    return (
        f"{'quick' if options.quick else 'full'} run, appendfsync {options.fsync}, "
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}"
    )


BARE_SCRIPT = """
-- The baseline append: check the head version, XADD, move the head (and, with a third key, put the
-- payload on a feed as append.lua does). KEYS[1] stream  KEYS[2] head  KEYS[3] feed (optional)
-- ARGV[1] expected version  ARGV[2] new version  ARGV[3] payload  ARGV[4] story (with a feed)
local v = redis.call('HGET', KEYS[2], 'v') or '0'
if v ~= ARGV[1] then
  return {'conflict', v}
end
redis.call('XADD', KEYS[1], ARGV[2] .. '-0', 'e', ARGV[3])
redis.call('HSET', KEYS[2], 'v', ARGV[2])
if #KEYS > 2 then
  redis.call('XADD', KEYS[3], '*', 's', ARGV[4], 'v', ARGV[2], '__data__', ARGV[3])
end
return {'ok', ARGV[2]}
"""
"""A minimal version-checked append (no chain, no idempotency): what the store alone costs."""
