"""Running the services: ``serve`` (all in one process), or ``api`` / ``projector`` / ``gateway`` alone.

``serve`` without a Redis URL starts the embedded Valkey on the data dir first and stops it last;
SIGINT and SIGTERM stop everything cleanly, and the kernel stops the Valkey if we are killed
(``services.store.embedded``). A start that cannot happen raises its ``DatelineError``
(``PortInUse``, ``StoreUnavailable``) for the ``dateline`` command to report
(``services.cli.errors``); what the operator needs goes to stdout, one line each (``say``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import socket
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import uvicorn

from events.errors import PortInUse
from services.http import security
from services.http.app import create_app, front
from services.http.transport import OneWriteProtocol
from services.projector.consumers import Consumers, consumer_name
from services.projector.feeds import trim_forever
from services.projector.fold import Projector
from services.realtime.gateway import Gateway
from services.settings import Settings
from services.store import identity
from services.store.connection import Client, connect, redacted
from services.store.embedded import EmbeddedValkey
from services.store.record import Store
from services.store.tokens import Tokens


def say(line: str) -> None:
    """One line for the operator on stdout, flushed at once (a log or a pipe sees it now)."""
    print(line, flush=True)


class Projection:
    """The projector service: its consumers of the feeds and the feed trimmer."""

    def __init__(self, url: str, settings: Settings | None = None) -> None:
        self.url = url
        self.client = connect(url)
        self.store = Store(self.client)
        self.projector = Projector(self.client, self.store)
        self.consumer = consumer_name()
        given = settings or Settings()
        self.consumers = Consumers(
            url,
            lambda: self.projector,
            self.consumer,
            ack_replicas=given.ack_replicas,
            ack_timeout=given.ack_timeout_ms / 1000,
        )
        self._trim: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.consumers.start()
        self._trim = asyncio.get_running_loop().create_task(trim_forever(self.client))

    async def stop(self) -> None:
        if self._trim is not None:
            self._trim.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._trim
        await self.consumers.stop()
        await self.client.aclose()


STORE_ID_FILE = "store-id"
"""The file in ``serve``'s data dir naming the store it last served (``know_store``)."""


async def know_store(url: str, settings: Settings) -> str:
    """The store's id, checked against the one this data dir last served; kept there.

    A store that does not carry the id ``serve`` last wrote to (emptied, or another one) stops
    the start with ``StoreUnavailable`` saying so, rather than being taken as new: a version 1
    would be reused. Delete the data dir's ``store-id`` file to start a new record on purpose.
    """
    kept = settings.data_dir / STORE_ID_FILE
    given = settings.store_id or (kept.read_text().strip() if kept.exists() else None)
    client = connect(url)
    try:
        found = await identity.learn(client, given, settings.partitions)
    finally:
        await client.aclose()
    if not kept.exists():
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        kept.write_text(found + "\n")
    return found


async def bootstrap_admin(url: str, settings: Settings) -> None:
    """On a store with no tokens and no ``DATELINE_ADMIN_TOKEN``, create and print the first admin."""
    if settings.admin_token:
        return
    client = connect(url)
    try:
        tokens = Tokens(client)
        if not await tokens.any():
            token, _ = await tokens.create("admin", "admin")
            say(f"admin token: {token}")
    finally:
        await client.aclose()


class Secured(uvicorn.Server):
    """uvicorn's server, whose default headers (the security headers) are in place before it
    accepts a connection: uvicorn itself sets them on its first tick, after it listens."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self.server_state.default_headers = list(self.config.encoded_headers)
        await super().startup(sockets)


def _server(settings: Settings, url: str) -> uvicorn.Server:
    config = uvicorn.Config(
        front(create_app(settings, url)),
        host=settings.host,
        port=settings.http_port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        http=OneWriteProtocol,  # each response in one write (services/http/transport.py)
        headers=security.headers(settings),  # on every answer, made once (http/security.py)
    )
    return Secured(config)


async def _serve_http(server: uvicorn.Server, sock: socket.socket | None) -> None:
    """Serve HTTP until SIGINT or SIGTERM, then return so ``run`` can stop the rest.

    After a graceful shutdown uvicorn re-raises the signal it stopped on, to the handler it found:
    for SIGTERM the default one, which would end the process before the gateway, the projector
    and the embedded Valkey are stopped. While it serves, that handler raises KeyboardInterrupt
    instead, and we swallow it here.
    """
    stops = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, signal.default_int_handler) for sig in stops}
    try:
        with contextlib.suppress(KeyboardInterrupt):
            await server.serve(sockets=[sock] if sock is not None else None)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


Extra = Callable[[str, Settings], Coroutine[Any, Any, None]]
"""A task run beside the services (``dateline demo``), given the store URL and the settings."""


async def run(
    settings: Settings,
    *,
    api: bool = True,
    projector: bool = True,
    gateway: bool = True,
    extra: Extra | None = None,
) -> None:
    """Run the chosen services (and ``extra``, cancelled when they stop) until SIGINT or SIGTERM.

    The listening sockets are bound first, so a port in use is reported before anything starts.
    """
    http_socket = listen(settings.host, settings.http_port, "HTTP") if api else None
    ws_socket = listen(settings.host, settings.ws_port, "websocket") if gateway else None
    embedded: EmbeddedValkey | None = None
    url = settings.redis_url
    if url is None:
        embedded = EmbeddedValkey(settings.data_dir, fsync=settings.fsync)
        url = embedded.start()
    projection: Projection | None = None
    hub: Gateway | None = None
    hub_client: Client | None = None
    beside: asyncio.Task[None] | None = None
    try:
        if api and projector and gateway:  # serve: one process, so no two race to create it
            await bootstrap_admin(url, settings)
        if projector:
            projection = Projection(url, settings)
            await projection.start()
        store_line = f"embedded Valkey, data in {embedded.data_dir}" if embedded else redacted(url)
        say(f"store: {store_line}")
        if gateway:
            hub_client = connect(url)
            hub = Gateway(
                hub_client,
                settings.allowed_origins(),
                ops_rate=settings.ws_ops_rate,
                ops_burst=settings.ws_ops_burst,
            )
            await hub.start(settings.host, settings.ws_port, sock=ws_socket)
            say(f"gateway: {settings.public_ws_url()}")
        if extra is not None:
            beside = asyncio.get_running_loop().create_task(extra(url, settings))
        if api:
            base = f"http://{settings.host}:{settings.http_port}"
            say(f"api: {base}")
            say(f"reader pages: {base}/live/<story>")
            say(f"openapi: {base}/openapi.json")
            say("ready")
            await _serve_http(_server(settings, url), http_socket)
        else:
            say("ready")
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()
    finally:
        if beside is not None:
            beside.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beside
        if hub is not None:
            await hub.stop()
        if hub_client is not None:
            await hub_client.aclose()
        if projection is not None:
            await projection.stop()
        if embedded is not None:
            embedded.stop()


def listen(host: str, port: int, what: str) -> socket.socket:
    """A bound listening socket, or a ``PortInUse`` that says which port and why."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio turns Nagle off (TCP_NODELAY) only on sockets that say so,
    # and a 201 held back by Nagle waits out the client's delayed ACK (40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
        sock.listen(1024)
    except OSError as error:
        sock.close()
        raise PortInUse(f"cannot listen for {what} on {host}:{port}: {error.strerror}") from None
    sock.set_inheritable(False)
    return sock


T = TypeVar("T")
GC_THRESHOLDS = (10_000, 50, 1_000)
"""The cyclic collector's thresholds in a service process (Python's default: 700, 10, 10)."""


def collect_less() -> None:
    """The collector policy of a service process: freeze start-up's objects, then collect rarely.

    Objects built at start-up (modules, the FastAPI app, the schemas) are frozen out of the
    collector's walks, and its passes run far less often than Python's default
    (``GC_THRESHOLDS``): the projector replaces its in-memory story views with every event, and
    full passes kept walking that heap (the measurements: docs/benchmarks.md). Our state is trees
    of tuples, maps and strings, freed by reference counting the moment they are dropped; what
    waits longer is only garbage in reference cycles that survived a middle pass (a closed
    connection's objects, say): freed at the next full pass, not never.
    """
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it is installed (Linux, macOS), else asyncio's own.

    Every hop of a change (the HTTP append, the projector's read and write, the gateway's read and
    sends) is a few small socket operations, and uvloop runs them in C (libuv).
    """
    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows
        return None
    return uvloop.new_event_loop


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on the event loop every service process uses (``event_loop_factory``)."""
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        return runner.run(main)


def main(settings: Settings, *, extra: Extra | None = None, **which: bool) -> None:
    """Run until SIGINT or SIGTERM; a start that cannot happen raises its ``DatelineError``."""
    collect_less()
    with contextlib.suppress(KeyboardInterrupt):
        run_loop(run(settings, extra=extra, **which))
    sys.stdout.flush()
