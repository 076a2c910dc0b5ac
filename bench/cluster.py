"""Appends and the projector on a cluster of one primary and of three, with and without waiting
for a replica (issue 12, 7).

For each layout (a local cluster from the embedded ``valkey-server``: 1 primary + 1 replica, then
3 primaries + 3 replicas with the store's 16 partitions, then with 256: ``DATELINE_PARTITIONS``;
the last written by one token, then by 8 desks' tokens) and each ``DATELINE_ACK_REPLICAS`` (0,
then 1), on a fresh cluster:
- ``dateline serve --redis <a node>`` as a newsroom runs it (its projector and gateway working);
- 1,000 stories opened through the API, then every node's ``INFO commandstats`` reset;
- ``wrk`` (``bench/post.lua``, one thread, 32 connections) POSTs entries round the 1,000 stories,
  with the admin token or with 8 editor tokens in turn (each token's write allowance is one key,
  and so one primary's: one token puts every append's limiter call on one primary);
- the bench waits until the projector has folded every event (no lag, nothing pending), and
  takes the projector's rate as events over the time from the load's start until then;
- each primary's ``INFO commandstats``: the server time it spent (the sum of ``usec`` over every
  command) and its ``EVALSHA`` calls (appends, the projector's folds, and the write limiter's
  bucket, one key per token and so one primary's).

On 2 cores the cluster cannot go faster than one server: every node, the API, the projector and
wrk share them. What the per-node figures predict instead: the primaries' server time per event
gives what one primary on a core of its own can take (``1e6 / usec``), and the busiest
primary's share of the work caps the cluster at that capacity divided by its share.

Targets (bench/floors.py): the busiest primary within 1.1x of the mean (over 1,000 stories, 256
partitions, 8 desks), and ACK_REPLICAS=1's append p50 within 1.5x of ACK_REPLICAS=0's.

    .venv/bin/python -m bench.cluster [--quick]
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import redis as redis_sync

from bench.common import (
    ROOT,
    TOKEN,
    Check,
    Children,
    Options,
    checks_table,
    finish,
    fmt,
    free_port,
    machine_line,
    main_wrapper,
    parse_options,
    say,
    story_ids,
    table,
    wait_drained,
    wait_http,
    wait_line,
    workdir,
)
from bench.floors import CLUSTER_ACK_P50, CLUSTER_BALANCE
from bench.pipeline import open_stories
from services.store.localcluster import LocalCluster, Node

STORIES = 1_000
CONNECTIONS = 32
BODY = json.dumps(
    {"type": "entry.published", "data": {"body": "<p>Rescue teams reached the building.</p>"}}
)


@dataclass
class Result:
    primaries: int
    partitions: int
    desks: int
    acks: int
    rps: float
    p50: float
    p99: float
    non2xx: int
    appended: int
    projected_rate: float
    per_primary: list[tuple[int, float, int]]
    """(port, server usec, EVALSHA calls) of each primary, over the load and the folding."""

    @property
    def busiest_ratio(self) -> float:
        usec = [u for _, u, _ in self.per_primary]
        return max(usec) / (sum(usec) / len(usec))


def _serve(children: Children, url: str, tmp: Path, acks: int, partitions: int) -> tuple[int, Any]:
    port, ws_port = free_port(), free_port()
    log = tmp / f"serve-{acks}.log"
    argv = [sys.executable, "-m", "services", "serve", "--redis", url]
    argv += [
        "--http-port",
        str(port),
        "--ws-port",
        str(ws_port),
        "--data-dir",
        str(tmp / f"serve-data-{url.rsplit(':', 1)[1]}"),
    ]
    env = {
        "DATELINE_ADMIN_TOKEN": TOKEN,
        "DATELINE_ACK_REPLICAS": str(acks),
        "DATELINE_PARTITIONS": str(partitions),
    }
    proc = children.start("serve", argv, env, log)
    wait_line(proc, log, "ready")
    wait_http(proc, f"http://127.0.0.1:{port}/healthz", log)
    return port, proc


def _desks(port: int, desks: int) -> list[str]:
    """``desks`` editor tokens (one: the admin token)."""
    if desks == 1:
        return [TOKEN]
    made = []
    with httpx.Client(
        base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {TOKEN}"}
    ) as http:
        for n in range(desks):
            answer = http.post("/tokens", json={"role": "editor", "name": f"desk-{n}"})
            answer.raise_for_status()
            made.append(str(answer.json()["token"]))
    return made


def _wrk(port: int, prefix: str, seconds: int, tokens: list[str]) -> dict[str, float]:
    env = {
        **os.environ,
        "BENCH_TOKEN": TOKEN,
        "BENCH_TOKENS": ",".join(tokens),
        "BENCH_PREFIX": prefix,
        "BENCH_STORIES": str(STORIES),
        "BENCH_BODY": BODY,
    }
    argv = [
        "wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--timeout", "10s",
        "-s", str(ROOT / "bench" / "post.lua"), f"http://127.0.0.1:{port}",
    ]  # fmt: skip
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            raw = json.loads(line.removeprefix("BENCH_JSON "))
            return {
                "requests": raw["requests"],
                "rps": raw["requests"] / (raw["duration_us"] / 1e6),
                "p50": raw["p50_us"] / 1000,
                "p99": raw["p99_us"] / 1000,
                "non2xx": raw["non2xx"] + raw["errors"],
            }
    raise RuntimeError(f"wrk gave no result:\n{done.stdout}\n{done.stderr}")


def _stats(node: Node) -> tuple[float, int]:
    """A node's server time (usec, every command) and EVALSHA calls since the last reset."""
    with node.client() as c:
        stats = c.info("commandstats")
    usec = sum(float(v["usec"]) for v in stats.values())
    return usec, int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


def measure(
    tmp: Path, primaries: int, partitions: int, desks: int, acks: int, seconds: int
) -> Result:
    name = f"cluster-{primaries}-{partitions}-{desks}-{acks}"
    cluster = LocalCluster(tmp / name, primaries_wanted=primaries)
    cluster.start()
    children = Children()
    try:
        port, _ = _serve(children, cluster.url, tmp / name, acks, partitions)
        prefix = f"c{primaries}p{partitions}d{desks}a{acks}"
        open_stories(port, story_ids(prefix, STORIES))
        tokens = _desks(port, desks)
        store = redis_sync.RedisCluster.from_url(cluster.url)
        wait_drained(store)  # type: ignore[arg-type]  # per-key calls only: a cluster client will do
        for node in cluster.primaries():
            with node.client() as c:
                c.config_resetstat()
        began = time.monotonic()
        load = _wrk(port, prefix, seconds, tokens)
        wait_drained(store)  # type: ignore[arg-type]
        took = time.monotonic() - began
        store.close()
        per_primary = [(n.port, *_stats(n)) for n in cluster.primaries()]
    finally:
        children.close()
        cluster.stop()
    return Result(
        primaries,
        partitions,
        desks,
        acks,
        load["rps"],
        load["p50"],
        load["p99"],
        int(load["non2xx"]),
        int(load["requests"]),
        load["requests"] / took,
        per_primary,
    )


def run(options: Options) -> list[Check]:
    if not shutil.which("wrk"):
        raise SystemExit("bench.cluster needs wrk: apt-get install -y wrk")
    seconds = 3 if options.quick else 10
    results: list[Result] = []
    with workdir() as tmp:
        for primaries, partitions, desks in ((1, 16, 1), (3, 16, 1), (3, 256, 1), (3, 256, 8)):
            for acks in (0, 1):
                say(
                    f"{primaries} primary(ies), {partitions} partitions, {desks} token(s),"
                    f" ACK_REPLICAS={acks}: {seconds} s of load"
                )
                results.append(measure(tmp, primaries, partitions, desks, acks, seconds))
    say(machine_line(options))
    table(
        f"POST /stories/{{story}}/events through dateline serve --redis <cluster>, {STORIES:,}"
        f" stories, wrk -c{CONNECTIONS}, {seconds} s",
        ["primaries", "partitions", "tokens", "ACK", "requests/s", "p50 ms", "p99 ms",
         "non-2xx", "projected/s", "busiest/mean"],
        [
            [str(r.primaries), str(r.partitions), str(r.desks), str(r.acks), fmt(r.rps),
             fmt(r.p50, 2),
             fmt(r.p99, 2),
             str(r.non2xx), fmt(r.projected_rate), fmt(r.busiest_ratio, 3)]
            for r in results
        ],
    )  # fmt: skip
    rows = []
    for r in results:
        total = sum(u for _, u, _ in r.per_primary)
        for port, usec, calls in r.per_primary:
            rows.append(
                [
                    f"{r.primaries}/{r.partitions}/{r.desks}/{r.acks}",
                    str(port),
                    fmt(calls),
                    fmt(usec / 1e6, 2),
                    f"{usec / total:.1%}",
                ]
            )
    table(
        "Per primary (INFO commandstats): EVALSHA calls (appends, folds, the write limiter's"
        " bucket), server time, and its share",
        ["primaries/partitions/tokens/ACK", "port", "EVALSHA", "server s", "share"],
        rows,
    )
    three = [r for r in results if r.partitions == 256 and r.desks == 8]
    for r in [r for r in results if r.primaries == 3]:
        times = [u for _, u, _ in r.per_primary]
        per = sum(times) / r.appended  # every primary's time, per event appended and folded
        share = max(times) / sum(times)
        say(
            f"{r.partitions} partitions, {r.desks} token(s), ACK={r.acks}: {per:.1f} usec of server time per event (appended, folded, fanned"
            f" out) over the 3 primaries, so one primary on a core of its own takes"
            f" {1e6 / per:,.0f} events/s; the busiest does {share:.1%} of the work, so these 3"
            f" cap at {1e6 / per / share:,.0f}/s and N balanced ones at N x {1e6 / per:,.0f}/s"
        )
    base = next(r for r in three if r.acks == 0)
    acked = next(r for r in three if r.acks == 1)
    checks = [
        Check(CLUSTER_BALANCE, "busiest primary / the mean, 3 primaries, 256 partitions, 8 desks",
              base.busiest_ratio, 1.0, "x"),
        Check(CLUSTER_ACK_P50, "append p50, ACK_REPLICAS=1 vs 0, 3 primaries, 256, 8 desks",
              acked.p50, base.p50, "ms"),
    ]  # fmt: skip
    checks_table("bench.cluster targets", checks)
    return checks


def main(argv: list[str] | None = None) -> int:
    options = parse_options(__doc__.splitlines()[0], argv)
    return main_wrapper(lambda: finish(options, run(options)))


if __name__ == "__main__":
    raise SystemExit(main())
