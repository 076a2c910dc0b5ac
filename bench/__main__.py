"""``python -m bench``: every benchmark in turn (never two at once), then all targets in one table.

Each bench runs in a process of its own with its own fresh Valkey; ``--quick`` and ``--strict`` are
passed on, and ``--fsync`` when given (otherwise each bench keeps its default: ``always``, but
``everysec`` for ``replay``, whose 100,000-event build is not what it measures). ``--only
append,projector`` picks some.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import DIGITS, fmt, say, table

SETTLE_S = 3.0
"""Idle seconds after each bench: fanout closes 10,000 sockets as it ends, and the bench after it
(e2e_latency, paced single events) could measure that teardown: its 1-client p50 was 2.03 ms in
one full run and 1.47 to 1.79 ms alone."""
BENCHES = (
    "append",
    "http_append",
    "reads",
    "projector",
    "fanout",
    "e2e_latency",
    "pipeline",
    "memory",
    "replay",
    "cluster",
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument(
        "--fsync", choices=("always", "everysec"), help="passed on (default: each bench's own)"
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when any target is missed")
    parser.add_argument("--only", help=f"comma-separated subset of {', '.join(BENCHES)}")
    args = parser.parse_args()
    chosen = args.only.split(",") if args.only else list(BENCHES)
    unknown = set(chosen) - set(BENCHES)
    if unknown:
        parser.error(f"unknown bench: {', '.join(sorted(unknown))}")
    terminated = []

    def on_sigterm(signum: int, frame: object) -> None:
        terminated.append(signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    rows, failed, missed = [], [], False
    with tempfile.TemporaryDirectory(prefix="dateline-bench-") as tmp:
        for name in chosen:
            out = Path(tmp) / f"{name}.json"
            argv = [sys.executable, "-m", f"bench.{name}", "--json", str(out)]
            if args.fsync:
                argv += ["--fsync", args.fsync]
            if args.quick:
                argv.append("--quick")
            say(f"\n== bench.{name} ==")
            proc = subprocess.Popen(argv)
            try:
                code = proc.wait()
            except KeyboardInterrupt:
                if terminated:  # a Ctrl-C reaches the child by itself; a SIGTERM to us does not
                    proc.terminate()
                proc.wait()  # it is stopping its servers
                say("interrupted")
                return 130
            time.sleep(
                SETTLE_S
            )  # the bench's servers and clients are gone; let their sockets go too
            if code != 0 or not out.exists():
                failed.append(name)
                continue
            for check in json.loads(out.read_text()):
                missed |= not check["passed"]
                if check.get("absolute"):
                    unit = check["unit"]
                    measured = f"{fmt(check['ours'], DIGITS.get(unit, 0))} {unit}"
                else:
                    measured = fmt(check["ratio"], 2) + "x"
                rows.append(
                    [
                        name,
                        check["label"],
                        measured,
                        check.get("wanted")
                        or (">= " if check["sense"] == "at_least" else "<= ")
                        + f"{check['target']:g}x",
                        "PASS" if check["passed"] else "MISS",
                    ]
                )
    say("")
    table("all targets", ["bench", "target", "measured", "wanted", "result"], rows)
    if failed:
        say(f"FAILED to run: {', '.join(failed)}")
        return 2
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
