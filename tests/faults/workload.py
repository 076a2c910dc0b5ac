"""The fault suite's workload: writers that retry with their Idempotency-Keys, readers that resume
with ``since``, and the checks that what was acknowledged is stored once and shown without a gap.

A writer never gives up on a write: it sends it again with the same key and body until it gets
its 201 (or a refusal that is not "not now"), so after a fault every key it ever sent has exactly
one event, and an event with no 201 behind it would be a duplicate or a phantom. A reader follows
its story over the websocket, resubscribing with ``since`` whenever the gateway closes it or the
connection drops, and counts every gap, duplicate and reorder.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

from events.chain import Envelope, verify
from projections.story import render, replay
from tests.conftest import ADMIN_TOKEN

NOT_NOW = {502, 503, 504}
"""Answers a writer sends again, with the same key (the contract's "retry is safe")."""


@dataclass
class Writer:
    """One tool posting entries to ``story``; what it was told and how long each answer took."""

    story: str
    name: str
    acked: dict[str, Envelope] = field(default_factory=dict)
    """Idempotency-Key -> the 201's envelope."""
    acked_at: dict[str, float] = field(default_factory=dict)
    """Idempotency-Key -> when its 201 arrived (wall clock, seconds since the epoch)."""
    body_size: int = 0
    """Bytes of filler in each entry's body (a test that fills a disk wants them big)."""
    sent: int = 0
    unavailable: int = 0
    """503 ``store_unavailable`` answers, each with a Retry-After."""
    no_answer: int = 0
    """Requests that got no answer at all (connection refused, reset, timed out)."""
    wrong: list[str] = field(default_factory=list)
    """Answers the contract does not allow here (a 500, a 503 without Retry-After, ...)."""
    slowest: float = 0.0
    """The longest a request waited for any answer, in seconds."""

    async def run(self, base: str, stop: asyncio.Event, *, timeout: float = 10.0) -> None:
        """Write entries one after another until ``stop`` is set (finishing the one in flight)."""
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=timeout) as http:
            n = 0
            while not stop.is_set():
                await self.write(http, f"{self.name}-{n}")
                n += 1

    async def write(self, http: httpx.AsyncClient, key: str) -> None:
        """Send one entry until it is acknowledged, with the same key and body each time."""
        text = f"<p>{key}{' ' + 'x' * self.body_size if self.body_size else ''}</p>"
        body = {"type": "entry.published", "data": {"body": text, "entry_id": key}}
        while True:
            self.sent += 1
            began = time.monotonic()
            try:
                r = await http.post(
                    f"/stories/{self.story}/events", json=body, headers={"Idempotency-Key": key}
                )
            except httpx.HTTPError:
                self.no_answer += 1
                self.slowest = max(self.slowest, time.monotonic() - began)
                await asyncio.sleep(0.05)
                continue
            self.slowest = max(self.slowest, time.monotonic() - began)
            if r.status_code == 201:
                self.acked[key] = Envelope.model_validate_json(r.content)
                self.acked_at[key] = time.time()
                return
            code = error_code(r)
            if r.status_code == 503 and code == "store_unavailable":
                self.unavailable += 1
                if not r.headers.get("Retry-After", "").isdigit():
                    self.wrong.append(f"503 without Retry-After: {r.headers}")
                await asyncio.sleep(0.05)  # a test does not wait the whole Retry-After
                continue
            if r.status_code in NOT_NOW:
                self.unavailable += 1
                await asyncio.sleep(0.05)
                continue
            self.wrong.append(f"{r.status_code} {r.text[:200]}")
            return


def error_code(r: httpx.Response) -> str | None:
    """The contract's error code of an answer, or None when the body is not the error shape."""
    try:
        return str(r.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return None


@dataclass
class Reader:
    """One browser following ``story``: the versions it was shown, and what broke the order."""

    story: str
    versions: list[int] = field(default_factory=list)
    gaps: int = 0
    duplicates: int = 0
    resets: int = 0
    resumes: int = 0
    store_errors: int = 0
    """``store_unavailable`` notices (``"subscribed": true``): the gateway telling it the store
    is away while its subscription stays."""
    closes: dict[int, int] = field(default_factory=dict)
    """Close codes the gateway sent, counted."""
    refusals: list[str] = field(default_factory=list)
    """Codes of other error frames (a subscribe refused while the store was away, ...)."""
    current: int | None = None
    shown: dict[int, str | None] = field(default_factory=dict)
    """Version -> the entry id its change frame showed (None for a change with no entry)."""

    async def run(self, ws_url: str, stop: asyncio.Event) -> None:
        """Follow the story until ``stop`` is set, resuming with ``since`` after every close."""
        while not stop.is_set():
            try:
                async with connect(ws_url, max_size=None, open_timeout=5) as ws:
                    ask: dict[str, Any] = {"op": "subscribe", "story": self.story}
                    if self.current is not None:
                        ask["since"] = self.current
                        self.resumes += 1
                    await ws.send(orjson.dumps(ask).decode())
                    await self.follow(ws, stop)
                    if ws.close_code is not None:
                        self.closes[ws.close_code] = self.closes.get(ws.close_code, 0) + 1
            except (OSError, TimeoutError, WebSocketException) as error:
                self.refusals.append(repr(error))
                await asyncio.sleep(0.1)

    async def follow(self, ws: Any, stop: asyncio.Event) -> None:
        """Read frames until the connection closes or ``stop`` is set."""
        while not stop.is_set():
            try:
                raw = await asyncio.wait_for(ws.recv(), 0.5)
            except TimeoutError:
                continue
            frame = orjson.loads(raw)
            if frame["type"] == "snapshot":
                if self.current is not None:
                    self.resets += 1
                self.current = frame["version"]
            elif frame["type"] == "change":
                version = frame["version"]
                if self.current is not None and version <= self.current:
                    self.duplicates += 1
                    continue
                if self.current is not None and version > self.current + 1:
                    self.gaps += 1
                self.current = version
                self.versions.append(version)
                entry = frame.get("entry")
                self.shown[version] = entry.get("entry_id") if isinstance(entry, dict) else None
            elif frame["type"] == "error":
                if frame.get("subscribed"):  # the store is away; the subscription stays
                    self.store_errors += 1
                else:
                    self.refusals.append(str(frame.get("code")))
                    return  # refused (for instance its subscribe while the store was away)
        with contextlib.suppress(WebSocketException):
            await ws.close()


async def history(http: httpx.AsyncClient, story: str) -> list[Envelope]:
    """Every event of ``story``, as an admin reads it."""
    events: list[Envelope] = []
    start: int | None = 1
    while start is not None:
        r = await http.get(
            f"/stories/{story}/events", params={"from_version": start, "limit": 10000}
        )
        r.raise_for_status()
        events += [Envelope.model_validate(e) for e in r.json()["events"]]
        start = r.json()["next_from_version"]
    return events


@dataclass
class Audit:
    """What a check of one story against its writers found."""

    events: int = 0
    acked: int = 0
    lost: int = 0
    duplicated: int = 0
    unacknowledged: int = 0
    chain_breaks: int = 0
    projection_differs: int = 0
    """1 when the story's projection differs from a replay (in a ``total``: how many)."""


def total(audits: list[Audit]) -> Audit:
    """The audits of several stories as one (projections differing: how many stories)."""
    return Audit(
        events=sum(a.events for a in audits),
        acked=sum(a.acked for a in audits),
        lost=sum(a.lost for a in audits),
        duplicated=sum(a.duplicated for a in audits),
        unacknowledged=sum(a.unacknowledged for a in audits),
        chain_breaks=sum(a.chain_breaks for a in audits),
        projection_differs=sum(a.projection_differs for a in audits),
    )


async def audit(http: httpx.AsyncClient, story: str, writers: list[Writer]) -> Audit:
    """Check ``story`` against what its writers were told, and its projection against a replay.

    Lost: a 201 whose envelope is not in the record at its version. Duplicated: a key (entry id)
    stored twice. Unacknowledged: an entry no writer holds a 201 for (a phantom). The projection,
    waited for at the head, must equal a replay of the record, page by page.
    """
    events = await history(http, story)
    found = Audit(events=len(events))
    found.chain_breaks = 0 if verify(events).ok else 1
    if [e.version for e in events] != list(range(1, len(events) + 1)):
        found.chain_breaks += 1
    by_version = {e.version: e for e in events}
    entries = [str(e.data["entry_id"]) for e in events if e.type == "entry.published"]
    found.duplicated = len(entries) - len(set(entries))
    acked = {key: env for w in writers for key, env in w.acked.items()}
    found.acked = len(acked)
    found.lost = sum(by_version.get(env.version) != env for env in acked.values())
    found.unacknowledged = len(set(entries) - set(acked))
    state = replay(story, events)
    before: str | None = None
    while True:
        params: dict[str, Any] = {"min_version": len(events), "limit": 500}
        if before is not None:
            params["before"] = before
        r = await http.get(f"/stories/{story}", params=params)
        r.raise_for_status()
        page = r.json()
        if page != render(state, 500, None if before is None else int(before)):
            found.projection_differs = 1
            break
        before = page["next_before"]
        if before is None:
            break
    return found


def reader_breaks(readers: list[Reader], heads: dict[str, int]) -> tuple[int, int, int]:
    """(gaps, duplicates, readers who did not reach their story's head) over ``readers``."""
    gaps = sum(r.gaps for r in readers)
    duplicates = sum(r.duplicates for r in readers)
    short = sum(r.current != heads[r.story] for r in readers)
    return gaps, duplicates, short


def phantoms_shown(readers: list[Reader], records: dict[str, list[Envelope]]) -> int:
    """Change frames whose event is not the record's at that version: an event readers were
    shown that the store then lost (a failover that dropped it, and another took its version)."""
    found = 0
    for reader in readers:
        by_version = {e.version: e for e in records[reader.story]}
        for version, entry_id in reader.shown.items():
            event = by_version.get(version)
            if event is None or (entry_id is not None and event.entry_id != entry_id):
                found += 1
    return found


def stop(proc: subprocess.Popen[str], log: Path | None = None, timeout: float = 15.0) -> str:
    """Stop a ``dateline`` child (SIGTERM, then SIGKILL past ``timeout``); what it printed
    (to its pipe, or to ``log``)."""
    proc.terminate()
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        out = f"{out or ''}\n(did not stop within {timeout:.0f} s of SIGTERM: killed)"
    if log is not None:
        out = log.read_text() + (out or "")
    return out or ""
