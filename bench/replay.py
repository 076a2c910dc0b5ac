"""Replay and verify a long story: fold rate, replay?version=N with checkpoints and without, verify.

One fresh embedded Valkey (``appendfsync everysec`` by default here: the 100,000 appends of the
build are not what is measured, and under ``always`` they take several times longer; ``--fsync
always`` is accepted). One story of 100,000 events (``--quick`` 5,000) built through
``Store.append`` (decisions, seals, ``append.lua``; not the HTTP API), a live blog's mix: mostly
``entry.published`` (some key events, headlines, time labels, links in bodies), then corrections,
edits, retractions, pins and unpins, embeds attached and removed, a few story updates, each on a
recent entry that allows it. Then ``Projector.project`` over the record, 100 events a call (as the
projector's batches), until the projection reaches the head, with a checkpoint every
``CHECKPOINT_EVERY`` versions. Measured, in this process:
- *fold rate*: ``projections.story.apply`` over the story's envelopes already in memory, from an
  empty ``StoryState`` to the head: events/s, median of 3;
- *replay*: ``Audit(client, store, ReadModel(client)).replay(story, N, 50)`` at N = 1,000, 50,000
  and 100,000 (``--quick`` 50, 2,500, 5,000), and at the worst case, N = 50,999 (``--quick``
  2,999): the version just below a checkpoint, whose replay folds the most events; median of 20
  calls with checkpoints (``--quick`` 5), of 3 with ``checkpoints=False`` (the fold from version
  1: the baseline); both answers are compared;
- *verify*: ``Audit.verify(story)``, median of 3; its baseline is the replay from version 1 at the
  head, which reads and parses the same record;
- for information, ``GET /stories/{story}/replay?version=N`` on a ``python -m services api``
  process (median of 10).

Targets (bench/floors.py): fold rate above 100,000 events/s; replay at every N under 100 ms
median with checkpoints; verify of the whole story under 2 s.

    .venv/bin/python -m bench.replay [--quick] [--fsync everysec|always] [--events N]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from bench.common import (
    ACTOR,
    LONG_PUBLISH,
    PUBLISH,
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
    median,
    parse_options,
    percentile,
    say,
    table,
    valkey,
    wait_http,
    workdir,
)
from bench.floors import REPLAY_FOLD, REPLAY_LATENCY, VERIFY
from events.chain import Envelope
from events.decide import parse_command, parse_open
from projections.story import StoryState, apply
from services.audit.replay import Audit
from services.projector.consumers import BATCH
from services.projector.fold import Projector
from services.store.connection import connect
from services.store.keys import CHECKPOINT_EVERY
from services.store.readmodel import ReadModel
from services.store.record import Store

STORY = "bench-replay"
RECENT = 500
"""Corrections, edits, pins, embeds and retractions pick among the last this many live entries."""
MIX = (
    ("entry.published", 0.80),
    ("entry.corrected", 0.05),
    ("entry.edited", 0.05),
    ("embed.attached", 0.03),
    ("entry.retracted", 0.02),
    ("entry.pinned", 0.02),
    ("embed.removed", 0.01),
    ("entry.unpinned", 0.01),
    ("story.updated", 0.01),
)
"""The share of each event type after ``story.opened`` (a type that cannot apply publishes)."""
BODIES = (
    PUBLISH["body"],
    LONG_PUBLISH["body"],
    "<p>Officials confirmed <strong>three</strong> shelters are open; see "
    '<a href="https://example.org/shelters">the list</a>.</p>',
)


class Newsroom:
    """Commands of a plausible live blog, each valid against what came before."""

    def __init__(self, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.live: list[str] = []
        self.embeds: dict[str, list[str]] = {}
        self.pinned: str | None = None
        self.n = 0
        self.types, self.weights = zip(*MIX, strict=True)

    def _recent(self) -> str:
        return self.live[-self.rng.randint(1, min(len(self.live), RECENT))]

    def next(self) -> tuple[str, dict[str, Any]]:
        self.n += 1
        n, rng = self.n, self.rng
        kind = rng.choices(self.types, self.weights)[0]
        if kind == "story.updated":
            return kind, {"summary": f"Update {n}: the storm moves north-east."}
        if kind == "entry.unpinned" and self.pinned is not None:
            entry, self.pinned = self.pinned, None
            return kind, {"entry_id": entry}
        if kind == "embed.removed":
            owners = [e for e in self.live[-RECENT:] if self.embeds.get(e)]
            if owners:
                entry = rng.choice(owners)
                return kind, {"entry_id": entry, "embed_id": self.embeds[entry].pop()}
        if kind in ("entry.published", "entry.unpinned", "embed.removed") or not self.live:
            entry = f"e{n:06d}"
            self.live.append(entry)
            data: dict[str, Any] = {"entry_id": entry, "body": rng.choice(BODIES)}
            if rng.random() < 0.5:
                data["headline"] = f"Update {n}"
            if rng.random() < 0.5:
                data["time_label"] = f"{(n // 60) % 24:02d}{n % 60:02d} GMT"
            if rng.random() < 0.03:
                data["key_event"] = True
            return "entry.published", data
        entry = self._recent()
        if kind == "entry.corrected":
            return kind, {"entry_id": entry, "body": rng.choice(BODIES), "note": f"Fixed {n}."}
        if kind == "entry.edited":
            return kind, {"entry_id": entry, "body": rng.choice(BODIES)}
        if kind == "embed.attached":
            embed = f"m{n:06d}"
            self.embeds.setdefault(entry, []).append(embed)
            return kind, {
                "entry_id": entry,
                "embed_id": embed,
                "kind": "image",
                "url": f"https://example.org/photos/{n}.jpg",
                "caption": "Flooded streets",
                "alt": "A flooded street",
            }
        if kind == "entry.pinned":
            self.pinned = entry
            return kind, {"entry_id": entry}
        # entry.retracted: the entry leaves the live list, its embeds and any pin with it
        self.live.remove(entry)
        self.embeds.pop(entry, None)
        if self.pinned == entry:
            self.pinned = None
        return kind, {"entry_id": entry, "note": f"Retracted {n}: not confirmed."}


async def build(store: Store, total: int) -> tuple[Counter[str], float]:
    """The story through ``Store.append``: ``story.opened`` then ``total - 1`` events."""
    began = time.perf_counter()
    opened = parse_open({"story": STORY, "title": "Storm Oriane", "summary": "Live coverage"})
    await store.append(STORY, opened, actor=ACTOR)
    newsroom = Newsroom()
    types: Counter[str] = Counter({"story.opened": 1})
    for _ in range(total - 1):
        kind, data = newsroom.next()
        await store.append(STORY, parse_command(kind, data), actor=ACTOR)
        types[kind] += 1
    return types, time.perf_counter() - began


async def project(client: Any, store: Store) -> float:
    """``Projector.project`` over the record, ``BATCH`` events a call, to the head."""
    projector = Projector(client, store)
    began = time.perf_counter()
    batch: list[Envelope] = []
    async for envelope in store.iterate(STORY):
        batch.append(envelope)
        if len(batch) == BATCH:
            await projector.project(batch)
            batch = []
    if batch:
        await projector.project(batch)
    return time.perf_counter() - began


def fold(envelopes: Sequence[Envelope]) -> float:
    """Seconds to fold every envelope from an empty state."""
    began = time.perf_counter()
    state = StoryState(STORY)
    for envelope in envelopes:
        state = apply(state, envelope)
    seconds = time.perf_counter() - began
    if state.version != envelopes[-1].version:
        raise RuntimeError("the fold did not reach the head")
    return seconds


async def timed(call: Callable[[], Awaitable[Any]], runs: int) -> tuple[list[float], Any]:
    """Seconds of each of ``runs`` calls, and the last answer."""
    seconds, answer = [], None
    for _ in range(runs):
        began = time.perf_counter()
        answer = await call()
        seconds.append(time.perf_counter() - began)
    return seconds, answer


async def http_replays(
    children: Children, tmp: Path, url: str, versions: Sequence[int], runs: int
) -> dict[int, float]:
    """Median seconds of ``GET /stories/{story}/replay?version=N`` on ``dateline api``."""
    port = free_port()
    log = tmp / "api.log"
    argv = [sys.executable, "-m", "services", "api", "--redis", url, "--http-port", str(port)]
    proc = children.start("api", argv, {"DATELINE_ADMIN_TOKEN": TOKEN}, log)
    await asyncio.to_thread(wait_http, proc, f"http://127.0.0.1:{port}/healthz", log)
    out = {}
    headers = {"Authorization": f"Bearer {TOKEN}"}
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as http:
            for version in versions:
                seconds = []
                for _ in range(runs + 1):  # the first warms the server's connections
                    began = time.perf_counter()
                    answer = await http.get(f"/stories/{STORY}/replay", params={"version": version})
                    seconds.append(time.perf_counter() - began)
                    if answer.status_code != 200:
                        raise RuntimeError(f"replay?version={version}: {answer.status_code}")
                out[version] = median(seconds[1:])
    finally:
        children.stop(proc)
    return out


async def measure(url: str, options: Options, children: Children, tmp: Path) -> list[Check]:
    total = options.extra.events or (5_000 if options.quick else 100_000)
    targets = sorted({max(1, total // 100), total // 2, total})
    if total == 100_000:
        targets = [1_000, 50_000, 100_000]  # the issue's
    # The most a checkpointed replay folds: the version just below a checkpoint.
    worst = min(total // 2 // CHECKPOINT_EVERY * CHECKPOINT_EVERY + CHECKPOINT_EVERY - 1, total)
    versions = sorted({*targets, worst})
    client = connect(url)
    store = Store(client)
    audit = Audit(client, store, ReadModel(client))
    try:
        say(machine_line(options))
        types, build_s = await build(store, total)
        say(
            f"built {total:,} events through Store.append in {build_s:.1f} s "
            f"({total / build_s:,.0f} events/s, appendfsync {options.fsync}): "
            + ", ".join(f"{t} {n:,}" for t, n in types.most_common())
        )
        project_s = await project(client, store)
        projected = await ReadModel(client).version(STORY)
        if projected != total:
            raise RuntimeError(f"projected to {projected}, not {total}")
        say(
            f"projected with Projector.project, {BATCH} a call, in {project_s:.1f} s "
            f"({total / project_s:,.0f} events/s); a checkpoint every {CHECKPOINT_EVERY:,} versions"
        )
        began = time.perf_counter()
        envelopes = [e async for e in store.iterate(STORY)]
        read_s = time.perf_counter() - began

        folds = [fold(envelopes) for _ in range(3)]
        fold_rate = total / median(folds)

        fast: dict[int, list[float]] = {}
        slow: dict[int, list[float]] = {}
        differ = []
        for version in versions:
            fast[version], with_marks = await timed(
                lambda v=version: audit.replay(STORY, v, 50), 5 if options.quick else 20
            )
            slow[version], without = await timed(
                lambda v=version: audit.replay(STORY, v, 50, checkpoints=False), 3
            )
            if with_marks != without:
                differ.append(version)
        verify_s, verdict = await timed(lambda: audit.verify(STORY), 3)
        if not verdict.ok or verdict.events != total:
            raise RuntimeError(f"verify said {verdict}")
        bypassed = audit.bypassed
        over_http = await http_replays(children, tmp, url, versions, 10)
    finally:
        await client.aclose()

    table(
        f"a story of {total:,} events",
        ["measure", "events", "median s", "events/s"],
        [
            [
                "read + parse the record (store.iterate)",
                fmt(total),
                fmt(read_s, 3),
                fmt(total / read_s),
            ],
            [
                "pure fold (projections.story.apply)",
                fmt(total),
                fmt(median(folds), 3),
                fmt(fold_rate),
            ],
            ["Audit.verify", fmt(total), fmt(median(verify_s), 3), fmt(total / median(verify_s))],
        ],
    )
    table(
        "Audit.replay(story, N, 50): one page of 50 entries (ms)",
        [
            "N",
            "checkpoints: median",
            "p90",
            "from version 1: median",
            "x faster",
            "over HTTP: median",
        ],
        [
            [
                fmt(v) + (" (worst case)" if v == worst and v not in targets else ""),
                fmt(median(fast[v]) * 1000, 2),
                fmt(percentile(sorted(fast[v]), 90) * 1000, 2),
                fmt(median(slow[v]) * 1000, 1),
                fmt(median(slow[v]) / median(fast[v]), 0),
                fmt(over_http[v] * 1000, 2),
            ]
            for v in versions
        ],
    )
    say(
        f"worst case: {CHECKPOINT_EVERY - 1} events to fold after the checkpoint below; over HTTP: "
        "GET /stories/{story}/replay?version=N on a dateline api process, median of 10 "
        "(information)"
    )
    if differ:
        say(f"WARNING: with and without checkpoints the replay differs at N = {differ}")
    if bypassed:
        say(f"WARNING: {bypassed} checkpoints were bypassed as damaged or stale")
    checks = [Check(REPLAY_FOLD, "pure fold rate", fold_rate, 0.0, "events/s")]
    checks += [
        Check(
            REPLAY_LATENCY,
            f"replay?version={v:,} median" + (" (worst case)" if v not in targets else ""),
            median(fast[v]) * 1000,
            median(slow[v]) * 1000,
            "ms",
        )
        for v in versions
    ]
    checks.append(
        Check(
            VERIFY,
            f"verify of {total:,} events, median",
            median(verify_s),
            median(slow[versions[-1]]),
            "s",
        )
    )
    checks_table("targets", checks)
    return checks


def run(options: Options) -> list[Check]:
    with valkey(options.fsync) as url, workdir() as tmp, Children() as children:
        return asyncio.run(measure(url, options, children, tmp))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--events", type=int, help="events in the story (5,000 quick, 100,000 full)"
    )
    options = parse_options(parser.description or "", argv, parser, fsync="everysec")
    return main_wrapper(lambda: finish(options, run(options)))


if __name__ == "__main__":
    sys.exit(main())
