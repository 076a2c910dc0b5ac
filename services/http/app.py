"""The HTTP API (CONTRACT.md "HTTP API"): the FastAPI app, its lifespan, and ``front``.

The routes live by audience: ``newsroom`` (writes), ``public`` (current state), ``audit``
(history, replay, revisions, verify), ``admin`` (tokens, health, metrics), and the reader page
(``services/reader``). Every exception any of them raises is answered by ``errors.refusal()``,
installed here as the handler of every kind of exception. While the app runs it follows the
change tail (``services.store.changefeed``) into ``Heads``, which lets public reads be answered
from ready bytes (``current.py``); the tail starts before the first request is served.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from events.errors import DatelineError
from services.http import admin, audit, newsroom, openapi, public, reader
from services.http.container import Services
from services.http.errors import refusal
from services.http.pages import Quick
from services.settings import Settings
from services.store import changefeed

log = logging.getLogger("dateline.api")

EVENTS_PATH = re.compile(r"/stories/([^/]+)/events")
"""The path ``front`` sends straight to the direct write route (with ``POST``)."""
STATE_PATH = re.compile(r"/stories/([^/]+)")
"""The story state ``front`` answers from ready bytes when it can (``GET``/``HEAD``, no query)."""
PAGE_PATH = re.compile(r"/live/([^/]+)")
"""The reader page ``front`` answers from ready bytes when it can (``GET``/``HEAD``, no query)."""


def front(api: FastAPI) -> ASGIApp:
    """The ASGI app uvicorn serves: ``POST /stories/{story}/events`` straight to its handler,
    the public reads this process can answer without the store straight from their ready bytes,
    everything else through FastAPI.

    These are the API's hot paths: the write path for the newsroom, and ``GET /stories/{story}``
    and ``GET /live/{story}`` (with no query) for every reader of the night. FastAPI's own
    middlewares (telemetry, body limit, exit stack) and its dependency solving cost more per
    request than the rest of the handler (docs/benchmarks.md). The routes stay declared in
    FastAPI for /openapi.json and answer exactly the same (a read the fast path cannot answer,
    a 304 it cannot vouch for, goes to the route); only the dispatch is shorter.
    """
    direct: newsroom.DirectWrite = api.state.post_event_direct
    quick: tuple[tuple[re.Pattern[str], Quick], ...] = api.state.quick_reads

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            method = scope["method"]
            if method == "POST":
                match = EVENTS_PATH.fullmatch(scope["path"])
                if match is not None:
                    scope["app"] = api
                    response = await direct(Request(scope, receive), match.group(1))
                    await response(scope, receive, send)
                    return
            elif (method == "GET" or method == "HEAD") and not scope["query_string"]:
                path = scope["path"]
                for pattern, answer in quick:
                    match = pattern.fullmatch(path)
                    if match is not None:
                        raw = answer(scope, dict(scope["headers"]), match.group(1))
                        if raw is not None:
                            status, headers, body = raw
                            await send(
                                {
                                    "type": "http.response.start",
                                    "status": status,
                                    "headers": headers,
                                }
                            )
                            await send({"type": "http.response.body", "body": body})
                            return
                        break
        await api(scope, receive, send)

    return app


def create_app(settings: Settings, url: str) -> FastAPI:
    """The API app, connected to the store at ``url``."""
    services = Services.connect(settings, url)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services.tokens.start()
        heads = services.heads
        streams: changefeed.Positions | None = None
        with contextlib.suppress(Exception):  # the store is away: the tail starts when it is back
            streams = await changefeed.positions(services.client)

        def failed(error: Exception) -> None:
            if heads.following:  # said once per outage
                log.warning("change tail failed, public reads go to the store: %r", error)
            heads.failed()

        tail = asyncio.get_running_loop().create_task(
            changefeed.follow(
                services.client,
                heads.changed,
                streams,
                on_reply=lambda: heads.replied(time.monotonic()),
                on_failure=failed,
            )
        )
        try:
            yield
        finally:
            tail.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await tail
            await services.tokens.stop()
            await services.client.aclose()

    app = FastAPI(
        title="Dateline",
        version="0.1.0",
        summary="Event-sourced live blogs: hash-chained history, live state, audit.",
        lifespan=lifespan,
    )

    async def refused(request: Request, error: Exception) -> Response:
        return refusal(error, services.refusals).json()

    # Exception is Starlette's last resort (it re-raises after answering, so uvicorn logs the bug).
    for kind in (DatelineError, HTTPException, RequestValidationError, Exception):
        app.add_exception_handler(kind, refused)

    writes, direct = newsroom.routes(services)
    app.include_router(writes)
    app.state.post_event_direct = direct
    app.include_router(public.router(services))
    app.include_router(audit.router(services))
    app.include_router(admin.router(services))
    app.include_router(reader.router(settings, services))
    openapi.install(app)
    app.state.quick_reads = (
        (STATE_PATH, public.quick(services)),
        (PAGE_PATH, reader.quick(settings, services)),
    )
    return app
