"""What each of ``serve``'s worker processes runs: one service, a word when it is ready, then until
SIGTERM.

Rules:
- a worker serves on the listening socket the supervisor bound and handed down by fork
  (``services.run.supervisor``): it never binds, so a port in use was reported before any
  worker started;
- it says it is ready (``Ready``) once it serves: the API when uvicorn listens and its lifespan
  has started, the projector when its consumer groups exist and its consumers run, the gateway
  when it listens and tails the changes. The supervisor prints ``ready`` when every worker has;
- SIGINT and SIGTERM stop it cleanly, as they stop ``dateline api`` (``services.run.serve``):
  the API finishes the requests in flight, the projector acknowledges what it folded, the
  gateway closes its connections;
- a start that fails on the store raises ``StoreUnavailable`` (``reachable``), for the
  supervisor to report as ``dateline serve`` always has.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import uvicorn

from services.http import security
from services.realtime.gateway import Gateway
from services.run.serve import Extra, Projection, Secured, _serve_http, _server
from services.settings import Settings
from services.store.connection import connect, reachable

Ready = Callable[[], None]
"""Tells the supervisor this worker serves (a line on its control pipe)."""

Body = Callable[[Ready], Coroutine[Any, Any, None]]
"""A worker's service, given how to say it is ready; returns when the worker has stopped."""


async def stopped() -> None:
    """Return at the first SIGINT or SIGTERM (a worker's signal to stop)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


class _Announcing(Secured):
    """uvicorn's server, saying it is ready once its lifespan has started and it listens."""

    def __init__(self, config: uvicorn.Config, ready: Ready) -> None:
        super().__init__(config)
        self._ready = ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.should_exit:
            self._ready()


def api(settings: Settings, url: str, sock: socket.socket) -> Body:
    """The HTTP API (the same app ``dateline api`` serves) on the shared HTTP socket."""

    async def body(ready: Ready) -> None:
        config = _server(settings, url).config
        await _serve_http(_Announcing(config, ready), sock)

    return body


def projector(settings: Settings, url: str) -> Body:
    """The projector: its consumers and the feed trimmer (one per ``serve``)."""

    async def body(ready: Ready) -> None:
        projection = Projection(
            url, settings
        )  # here, not in the supervisor: its consumer name is our pid
        try:
            with reachable():
                await projection.start()
            ready()
            await stopped()
        finally:
            await projection.stop()

    return body


def gateway(settings: Settings, url: str, sock: socket.socket) -> Body:
    """The websocket gateway on the websocket socket."""

    async def body(ready: Ready) -> None:
        client = connect(url)
        hub = Gateway(
            client,
            settings.allowed_origins(),
            ops_rate=settings.ws_ops_rate,
            ops_burst=settings.ws_ops_burst,
            headers=security.headers(settings),
        )
        try:
            await hub.start(settings.host, settings.ws_port, sock=sock)
            ready()
            await stopped()
        finally:
            await hub.stop()
            await client.aclose()

    return body


def beside(extra: Extra, url: str, settings: Settings) -> Body:
    """A task run beside the services (``dateline demo``'s player) until it ends or is stopped."""

    async def body(ready: Ready) -> None:
        ready()
        task = asyncio.get_running_loop().create_task(extra(url, settings))
        stop = asyncio.get_running_loop().create_task(stopped())
        await asyncio.wait((task, stop), return_when=asyncio.FIRST_COMPLETED)
        for pending in (task, stop):
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pending

    return body
