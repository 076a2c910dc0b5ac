"""``dateline tail STORY``: follow a story live in the terminal, over the websocket gateway.

Rules (CONTRACT "Websocket gateway"):
- subscribe; print the snapshot's entries oldest first, like a log (newest last), then each
  change as it comes: corrections in yellow with their note, retractions in red with their note
  and no body, silent edits quietly, pins, embeds and story updates each marked;
- remember the last version. A change that is not the next version means one was missed:
  resubscribe with ``since`` and drop what is in flight until the next version arrives (the
  gateway replays from there, with no gap and no duplicate). A dropped connection reconnects with
  backoff and resubscribes with ``since`` the same way; a ``reset`` snapshot starts over;
- at start, a gateway that does not answer after a short retry ends the tail (exit 3); an
  ``unknown_story`` error frame ends it (exit 2); Ctrl-C ends it (exit 0). Messages go to stderr,
  the story to stdout; ``--json`` prints each frame as one JSON line instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable
from typing import Any

import orjson
from rich.console import Console
from rich.padding import Padding
from rich.text import Text
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidURI, WebSocketException

from events.errors import UnknownStory
from services.reader.plaintext import html_text

Frame = dict[str, Any]
OnFrame = Callable[[Frame], None]
OnNotice = Callable[[str], None]

START_ATTEMPTS = 3
"""Connection attempts at start before the gateway counts as unreachable (exit 3)."""
START_DELAY = 0.5
BACKOFF_FIRST = 0.2
BACKOFF_MAX = 5.0
OPEN_TIMEOUT = 5.0


class GatewayUnreachable(Exception):
    """The gateway did not answer when the tail started."""


class _Lost(Exception):
    """The gateway answered with an error worth a reconnect (e.g. ``store_unavailable``)."""


# -- following -------------------------------------------------------------------------------


class Follower:
    """One story followed over reconnects: the last version seen, and where frames go."""

    def __init__(
        self, ws_url: str, story: str, on_frame: OnFrame, on_notice: OnNotice | None = None
    ) -> None:
        self.ws_url = ws_url
        self.story = story
        self.on_frame = on_frame
        self.on_notice = on_notice or (lambda _message: None)
        self.version: int | None = None
        """The last version passed on (None before the first snapshot)."""
        self.connections = 0
        self._passed = False

    async def run(self) -> None:
        """Follow until cancelled; raise ``UnknownStory`` or ``GatewayUnreachable``."""
        failures = 0
        delay = BACKOFF_FIRST
        while True:
            self._passed = False
            try:
                async with connect(
                    self.ws_url, max_size=None, open_timeout=OPEN_TIMEOUT, compression=None
                ) as ws:
                    self.connections += 1
                    await self._session(ws)
                reason = "the gateway closed the connection"
            except InvalidURI:
                raise
            except (OSError, TimeoutError, WebSocketException, _Lost) as error:
                reason = str(error) or type(error).__name__
            if self.connections == 0:
                failures += 1
                if failures >= START_ATTEMPTS:
                    raise GatewayUnreachable(f"no gateway at {self.ws_url}: {reason}")
                await asyncio.sleep(START_DELAY)
                continue
            if self._passed:  # that connection worked: start the backoff over
                delay = BACKOFF_FIRST
            since = f" since version {self.version}" if self.version is not None else ""
            self.on_notice(f"connection lost ({reason}); resuming{since} in {delay:.1f}s")
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX)

    async def _subscribe(self, ws: ClientConnection) -> None:
        request: Frame = {"op": "subscribe", "story": self.story}
        if self.version is not None:
            request["since"] = self.version
        await ws.send(orjson.dumps(request).decode())

    async def _session(self, ws: ClientConnection) -> None:
        """Subscribe (with ``since`` when resuming), then pass on each next version."""
        await self._subscribe(ws)
        resyncing = False
        async for message in ws:
            frame = orjson.loads(message)
            kind = frame.get("type")
            if kind == "error":
                code, text = frame.get("code"), frame.get("message", "")
                if code == "unknown_story":
                    raise UnknownStory(text or f"story {self.story!r} does not exist")
                if code == "store_unavailable":
                    raise _Lost(text)
                self.on_notice(f"gateway error {code}: {text}")
                continue
            if frame.get("story") != self.story:
                continue
            if kind == "snapshot":
                self.version = int(frame["version"])
                resyncing = False
                self._passed = True
                self.on_frame(frame)
            elif kind == "change" and self.version is not None:
                version = int(frame["version"])
                if version <= self.version:
                    continue  # already passed on: never twice
                if version > self.version + 1:
                    if not resyncing:  # frames already in flight are dropped until the replay
                        self.on_notice(
                            f"missed versions {self.version + 1}..{version - 1}; resubscribing"
                        )
                        resyncing = True
                        await self._subscribe(ws)
                    continue
                resyncing = False
                self.version = version
                self._passed = True
                self.on_frame(frame)


async def follow(
    ws_url: str,
    story: str,
    on_frame: OnFrame,
    *,
    stop: asyncio.Event | None = None,
    on_notice: OnNotice | None = None,
) -> None:
    """Follow ``story`` on the gateway at ``ws_url``, passing each frame on, until ``stop``.

    Raises ``UnknownStory`` when the gateway does not know the story and ``GatewayUnreachable``
    when it cannot be reached at start; later losses are resumed with ``since``.
    """
    follower = Follower(ws_url, story, on_frame, on_notice)
    if stop is None:
        await follower.run()
        return
    task = asyncio.ensure_future(follower.run())
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in (task, stopped):
            if not pending.done():
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pending
    if task.done() and not task.cancelled():
        task.result()  # the follower's error, if it ended with one


# -- rendering -------------------------------------------------------------------------------


def _when(entry: Frame) -> str:
    label = entry.get("time_label")
    if label:
        return str(label)
    published = str(entry.get("published_at") or "")
    return f"{published[11:16]} UTC" if len(published) >= 16 else ""


def _excerpt(entry: Frame, size: int = 70) -> str:
    if entry.get("headline"):
        return str(entry["headline"])
    text = " ".join(html_text(entry.get("body") or "").split())
    return text if len(text) <= size else text[: size - 1] + "…"


class Printer:
    """Writes frames to a rich console as a readable log of the story."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.embeds: dict[str, set[str]] = {}

    def __call__(self, frame: Frame) -> None:
        if frame.get("type") == "snapshot":
            self.snapshot(frame)
        elif frame.get("type") == "change":
            self.change(frame)

    # -- pieces --

    def _line(self, *parts: tuple[str, str], indent: int = 0) -> None:
        text = Text()
        for content, style in parts:
            text.append(content, style=style)
        self.console.print(Padding(text, (0, 0, 0, indent), expand=False) if indent else text)

    def _remember(self, entry: Frame) -> set[str]:
        """Note the entry's embeds; return those not seen before."""
        ids = {str(e["embed_id"]) for e in entry.get("embeds") or []}
        known = self.embeds.get(str(entry["entry_id"]), set())
        self.embeds[str(entry["entry_id"])] = ids
        return ids - known

    def _embed(self, embed: Frame) -> None:
        parts = [(f"[{embed['kind']}] ", "cyan"), (str(embed["url"]), "underline")]
        if embed.get("caption"):
            parts.append((f"  {embed['caption']}", ""))
        self._line(*parts, indent=4)
        if embed.get("alt"):
            self._line((f"alt: {embed['alt']}", "dim"), indent=4)

    def entry(self, entry: Frame, version: int | None = None) -> None:
        """An entry in full: time, headline, body (or tombstone), corrections, embeds."""
        self._remember(entry)
        head: list[tuple[str, str]] = [(_when(entry) or "—", "bold")]
        if entry.get("key_event"):
            head.append(("  KEY EVENT", "bold magenta"))
        if entry.get("headline"):
            head.append((f"  {entry['headline']}", "bold"))
        if version is not None:
            head.append((f"  v{version}", "dim"))
        if entry.get("status") == "retracted":
            retraction = entry.get("retraction") or {}
            self._line(*head)
            self._line(
                ("RETRACTED ", "bold red"), (str(retraction.get("note", "")), "red"), indent=4
            )
            return
        self._line(*head)
        body = html_text(entry.get("body") or "")
        if body:
            self.console.print(Padding(Text(body), (0, 0, 0, 4), expand=False))
        for correction in entry.get("corrections") or []:
            self._line(
                ("CORRECTED ", "bold yellow"), (str(correction.get("note", "")), "yellow"), indent=4
            )
        for embed in entry.get("embeds") or []:
            self._embed(embed)

    def snapshot(self, frame: Frame) -> None:
        state: Frame = frame["state"]
        if frame.get("reset"):
            self.console.rule(Text(f"resynchronised at version {frame['version']}", style="dim"))
        self.console.rule(Text(str(state.get("title", frame["story"])), style="bold"))
        status = f"{state.get('status', 'live')} · version {frame['version']}"
        self._line((status, "dim"))
        if state.get("summary"):
            self._line((str(state["summary"]), "italic"))
        if state.get("status") == "closed" and state.get("closed_note"):
            self._line(("STORY CLOSED ", "bold"), (str(state["closed_note"]), ""))
        key_events = state.get("key_events") or []
        if key_events:
            self._line(("Key events: ", "bold magenta"), ("; ".join(_headlines(key_events)), ""))
        pinned = state.get("pinned")
        if pinned:
            self._line(("PINNED ", "bold blue"), (_excerpt(pinned), ""))
        entries = list(state.get("entries") or [])
        if state.get("next_before"):
            self._line((f"(earlier entries not shown; the latest {len(entries)} follow)", "dim"))
        self.console.print()
        for entry in reversed(entries):
            self.entry(entry)
            self.console.print()

    def change(self, frame: Frame) -> None:
        event = str(frame.get("event"))
        version = int(frame["version"])
        entry: Frame | None = frame.get("entry")
        meta: Frame = frame.get("story_meta") or {}
        v = (f"  v{version}", "dim")
        if event == "entry.published" and entry:
            self.entry(entry, version)
        elif event == "entry.corrected" and entry:
            note = (entry.get("corrections") or [{}])[-1].get("note", "")
            self._line(("CORRECTED ", "bold yellow"), (f"{_when(entry)}  {_excerpt(entry)}", ""), v)
            self._line((str(note), "yellow"), indent=4)
            self.console.print(
                Padding(Text(html_text(entry.get("body") or "")), (0, 0, 0, 4), expand=False)
            )
            self._remember(entry)
        elif event == "entry.retracted" and entry:
            note = (entry.get("retraction") or {}).get("note", "")
            self._line(("RETRACTED ", "bold red"), (f"{_when(entry)}  {_excerpt(entry)}", ""), v)
            self._line((str(note), "red"), indent=4)
            self._remember(entry)
        elif event == "entry.edited" and entry:
            self._line((f"edited {_when(entry)}: {_excerpt(entry)}", "dim"), v)
            self._remember(entry)
        elif event == "entry.pinned" and entry:
            self._line(("PINNED ", "bold blue"), (f"{_when(entry)}  {_excerpt(entry)}", ""), v)
        elif event == "entry.unpinned" and entry:
            self._line((f"unpinned {_when(entry)}: {_excerpt(entry)}", "dim"), v)
        elif event == "embed.attached" and entry:
            added = self._remember(entry)
            self._line(("EMBED ", "bold cyan"), (f"on {_when(entry)}  {_excerpt(entry)}", ""), v)
            for embed in entry.get("embeds") or []:
                if str(embed["embed_id"]) in added:
                    self._embed(embed)
        elif event == "embed.removed" and entry:
            self._remember(entry)
            self._line((f"embed removed from {_when(entry)}: {_excerpt(entry)}", "dim"), v)
        elif event in ("story.updated", "story.opened"):
            label = "STORY UPDATED " if event == "story.updated" else "STORY OPENED "
            self._line((label, "bold green"), (str(meta.get("title", "")), "bold"), v)
            if meta.get("summary"):
                self._line((str(meta["summary"]), "italic"), indent=4)
        elif event == "story.closed":
            self._line(("STORY CLOSED ", "bold"), (str(meta.get("closed_note") or ""), ""), v)
        else:
            self._line((f"{event}", "dim"), v)


def _headlines(key_events: list[Frame]) -> list[str]:
    return [str(k.get("headline") or k.get("entry_id")) for k in reversed(key_events)]


def json_lines(frame: Frame) -> None:
    """``--json``: each frame as one JSON line on stdout."""
    sys.stdout.write(orjson.dumps(frame).decode() + "\n")
    sys.stdout.flush()


# -- the command -----------------------------------------------------------------------------


def main(story: str, ws_url: str, *, as_json: bool = False) -> int:
    """Run ``dateline tail``; return its exit code."""
    err = Console(stderr=True)
    on_frame: OnFrame = json_lines if as_json else Printer(Console())

    def notice(message: str) -> None:
        err.print(Text(message, style="dim"))

    try:
        asyncio.run(follow(ws_url, story, on_frame, on_notice=notice))
    except KeyboardInterrupt:
        return 0
    except UnknownStory as error:
        err.print(Text(f"error: {error.message}"))
        return 2
    except InvalidURI as error:
        err.print(Text(f"error: not a websocket URL: {error.uri}"))
        return 2
    except GatewayUnreachable as error:
        err.print(Text(f"error: {error}"))
        return 3
    return 0
