"""``dateline demo``: ``serve`` plus the sample story (``services.demo.sample_story``), played in live.

Rules:
- the demo writes as any newsroom tool does: over the HTTP API, with an editor token named
  ``demo-desk`` (so every event's actor is ``editor:demo-desk``) and one ``Idempotency-Key`` per
  step (the story id and the step's key), so a demo restarted halfway re-sends what it had sent,
  the server answers those from memory, and nothing is posted twice (CONTRACT "Idempotency");
- keys are scoped to their token, so the token is created once, in-process (``services.store.tokens``),
  and kept in ``<data dir>/demo-token`` (mode 0600) for the next run; a store that no longer knows
  it gets a fresh one;
- a story already complete is left alone: the demo only prints where to read it;
- the pause before each step is 2 to 4 s (``--pace`` fixes it; 0 plays at once), except for the
  first entry and for steps the story already holds, which are re-sent without waiting;
- a failure of the demo is reported on stderr and the servers keep running: a step the API
  refuses is a bug in the sample story (``DatelineError``), an API that keeps answering 429 or
  5xx is ``ApiUnreachable``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from events.errors import ApiUnreachable, DatelineError, TokenNameTaken, from_answer
from projections.plaintext import excerpt
from services.demo.sample_story import STEPS, Step
from services.run.serve import Extra, say
from services.settings import Settings
from services.store.connection import connect
from services.store.tokens import Tokens

DEMO_STORY = "demo-storm-oriane"
DESK = "demo-desk"
KEPT_IN = "demo-token"
LEAD_IN = 2
"""Steps played without a pause (the story opening and its first entry): the page is never empty."""
PACE = (2.0, 4.0)
ATTEMPTS = 8
READY_TIMEOUT = 30.0

Say = Callable[[str], None]


def local_base(settings: Settings) -> str:
    """The API's base URL as this machine reaches it (a wildcard bind is reached on loopback)."""
    host = settings.host
    if host in ("0.0.0.0", "", "::"):  # noqa: S104 - names of a bind, not one
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.http_port}"


async def demo_token(redis_url: str, data_dir: Path, *, name: str = DESK) -> str:
    """The demo desk's editor token: the one kept in the data dir, or a new one (then kept)."""
    client = connect(redis_url)
    try:
        tokens = Tokens(client)
        path = Path(data_dir) / KEPT_IN
        with contextlib.suppress(OSError):
            kept = path.read_text().strip()
            if kept:
                who = await tokens.resolve(kept)
                if who is not None and who.actor == f"editor:{name}":
                    return kept
        try:
            token, _ = await tokens.create("editor", name)
        except TokenNameTaken:  # its token was lost with an older data dir: replace it
            await tokens.revoke(name)
            token, _ = await tokens.create("editor", name)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(token + "\n")
        except OSError as error:
            print(f"demo: could not keep the token in {path}: {error}", file=sys.stderr)
        return token
    finally:
        await client.aclose()


async def story_version(http: httpx.AsyncClient, story: str) -> int:
    """The story's projected version, 0 when it does not exist yet."""
    response = await http.get(f"/stories/{story}", params={"limit": 1})
    if response.status_code == 404:
        return 0
    response.raise_for_status()
    return int(response.json()["version"])


async def send(http: httpx.AsyncClient, story: str, step: Step) -> dict[str, Any] | None:
    """Post one step with its key, retrying what may pass (no answer, 429, 5xx) with the same key.

    Returns the envelope, or None when the story already holds the step (a 409 such as
    ``entry_exists``: only when the key's first answer has been forgotten).
    """
    path, body = step.request(story)
    headers = {"Idempotency-Key": f"demo:{story}:{step.key}"}
    delay = 0.25
    answered = "no answer"
    for attempt in range(ATTEMPTS):
        try:
            response = await http.post(path, json=body, headers=headers)
        except httpx.TransportError:
            if attempt == ATTEMPTS - 1:
                raise
        else:
            answered = str(response.status_code)
            if response.status_code == 201:
                return dict(response.json())
            if response.status_code == 409:
                return None
            if response.status_code not in (429, 502, 503, 504):
                error = response.json().get("error", {})  # a refusal no retry can fix: a bug
                raise from_answer(
                    response.status_code,
                    str(error.get("code")),
                    f"step {step.key} ({step.type}) refused: {error.get('message')}",
                    error.get("details"),
                )
        await asyncio.sleep(delay)
        delay = min(delay * 2, 4.0)
    raise ApiUnreachable(f"step {step.key} ({step.type}): the API kept answering {answered}")


def describe(step: Step) -> str:
    """What the demo's line for a step names after its type: the title, entry, kind or note."""
    data = step.data
    if step.type == "story.opened":
        return str(data["title"])
    if step.type == "entry.published":
        words = data.get("headline") or excerpt(str(data["body"]), 60)
        return f"{data['entry_id']} {data.get('time_label', '')}: {words}"
    if step.type == "embed.attached":
        return f"{data['entry_id']} {data['kind']}"
    target = data.get("entry_id") or data.get("title") or data.get("note") or ""
    return str(target)


async def play(
    api_url: str,
    token: str,
    story: str = DEMO_STORY,
    *,
    pace: float | None = None,
    out: Say = say,
    steps: Sequence[Step] = STEPS,
    until: int | None = None,
) -> int:
    """Play ``steps`` (the first ``until`` of them) into ``story``; return the story's version.

    ``pace`` is the pause before each step in seconds (None: 2 to 4 s at random).
    """
    chosen = list(steps[:until])
    async with httpx.AsyncClient(
        base_url=api_url, headers={"Authorization": f"Bearer {token}"}, timeout=15.0
    ) as http:
        start = await story_version(http, story)
        if start >= len(steps):
            out(f"demo: story {story} is complete (version {start}); nothing to play")
            return start
        version = start
        for index, step in enumerate(chosen):
            held = index < start  # the story already has it: re-sent at once, answered from memory
            if not held and index >= LEAD_IN:
                wait = random.uniform(*PACE) if pace is None else pace
                if wait > 0:
                    await asyncio.sleep(wait)
            envelope = await send(http, story, step)
            if envelope is None:
                out(f"demo: {step.key} is already in the story")
                continue
            version = max(version, int(envelope["version"]))
            if int(envelope["version"]) > start:
                out(f"demo: v{envelope['version']} {step.type} {describe(step)}")
        return version


def player(story: str = DEMO_STORY, pace: float | None = None) -> Extra:
    """The task ``serve`` runs beside its servers for ``dateline demo`` (``run(extra=...)``)."""

    async def demo(url: str, settings: Settings) -> None:
        base = local_base(settings)
        try:
            token = await demo_token(url, settings.data_dir)
            await wait_ready(base)
            say(f"reader: {base}/live/{story}")
            say(
                f"follow it in a terminal: dateline tail {story} --ws-url {settings.public_ws_url()}"
            )
            version = await play(base, token, story, pace=pace)
            say(f"demo: done; story {story} is at version {version}")
            say(f"reader: {base}/live/{story}")
        except asyncio.CancelledError:
            raise
        except DatelineError as error:  # the servers keep running; the demo says why it stopped
            print(f"demo: stopped: {error.message} ({error.code})", file=sys.stderr, flush=True)
        except httpx.HTTPError as error:
            print(f"demo: stopped: the API did not answer: {error}", file=sys.stderr, flush=True)
        except Exception:  # a bug: its traceback in the log, and the servers keep serving
            logging.getLogger("dateline.demo").exception("demo: stopped by a bug")

    return demo


async def wait_ready(base: str, timeout: float = READY_TIMEOUT) -> None:
    """Wait until the API answers ``/healthz`` (uvicorn starts beside this task)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with httpx.AsyncClient(base_url=base, timeout=2.0) as http:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get("/healthz")).status_code == 200:
                    return
            if loop.time() > deadline:
                raise TimeoutError(f"the API at {base} did not come up")
            await asyncio.sleep(0.05)
