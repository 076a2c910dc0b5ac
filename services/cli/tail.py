"""``dateline tail STORY``: follow a story live in the terminal, over the websocket gateway.

Rules (CONTRACT "Websocket gateway"):
- subscribe; hand the snapshot, then each change as it comes, to the renderer
  (``services.cli.render.Printer``), or with ``--json`` print each frame as one JSON line;
- remember the last version. A change that is not the next version means one was missed:
  resubscribe with ``since`` and drop what is in flight until the next version arrives (the
  gateway replays from there, with no gap and no duplicate). A dropped connection reconnects with
  backoff and resubscribes with ``since`` the same way; a ``reset`` snapshot starts over;
- at start, a gateway that does not answer after a short retry ends the tail
  (``GatewayUnreachable``, exit 3); an ``unknown_story`` error frame ends it (``UnknownStory``,
  exit 2), as does a URL that is not a websocket URL (``UsageError``); Ctrl-C ends it (exit 0).
  A ``store_unavailable`` frame (``StoreUnavailable``) is a lost connection: resumed like one,
  unless it says ``"subscribed": true`` (the store is away, the subscription stays): a notice,
  as is the ``resumed`` frame that follows.
  Messages go to stderr, the story to stdout.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable

import orjson
from rich.console import Console
from rich.text import Text
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidURI, WebSocketException

from events.errors import (
    BY_CODE,
    DatelineError,
    GatewayUnreachable,
    StoreUnavailable,
    UnknownStory,
    UsageError,
)
from services.cli.render import Frame, Printer

OnFrame = Callable[[Frame], None]
OnNotice = Callable[[str], None]

START_ATTEMPTS = 3
"""Connection attempts at start before the gateway counts as unreachable (exit 3)."""
START_DELAY = 0.5
BACKOFF_FIRST = 0.2
BACKOFF_MAX = 5.0
OPEN_TIMEOUT = 5.0


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
            except (OSError, TimeoutError, WebSocketException, StoreUnavailable) as error:
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
                code, text = str(frame.get("code")), str(frame.get("message", ""))
                cls = BY_CODE.get(code, DatelineError)  # the tree's class for the frame's code
                if issubclass(cls, UnknownStory):
                    raise cls(text or f"story {self.story!r} does not exist")  # exit 2
                if frame.get("subscribed"):  # the store is away; the subscription stays
                    self.on_notice(f"gateway: {text}")
                    continue
                if issubclass(cls, StoreUnavailable):
                    raise cls(text)  # a lost store is a lost connection: resumed like one
                self.on_notice(f"gateway error {code}: {text}")
                continue
            if frame.get("story") != self.story:
                continue
            if kind == "resumed":
                self.on_notice("gateway: the store is back")
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


def json_lines(frame: Frame) -> None:
    """``--json``: each frame as one JSON line on stdout."""
    sys.stdout.write(orjson.dumps(frame).decode() + "\n")
    sys.stdout.flush()


# -- the command -----------------------------------------------------------------------------


def main(story: str, ws_url: str, *, as_json: bool = False) -> None:
    """Run ``dateline tail`` until Ctrl-C; raise what ends it otherwise (``reported`` says it)."""
    err = Console(stderr=True)
    on_frame: OnFrame = json_lines if as_json else Printer(Console())

    def notice(message: str) -> None:
        err.print(Text(message, style="dim"))

    try:
        asyncio.run(follow(ws_url, story, on_frame, on_notice=notice))
    except KeyboardInterrupt:
        return
    except InvalidURI as error:
        raise UsageError(f"not a websocket URL: {error.uri}") from None
