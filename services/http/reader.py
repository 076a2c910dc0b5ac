"""The reader's routes: ``GET /live/{story}``, its Atom feed, its static files, and the frozen
page of a replay.

CONTRACT.md "Reader page". People get HTML, never the API's JSON: a refusal (no such story, a bad
``before`` cursor, a store that is down) is decided by the API's one mapping,
``services.http.errors.refusal()`` (status, code, headers, and the refusal counted),
and only its page is rendered here. The gateway named on the page is ``DATELINE_WS_URL``, else
the gateway beside this API.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Hashable
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.types import Scope

from events.chain import Envelope
from events.errors import BadRequest, DatelineError, NotFound
from events.ids import is_id
from projections.story import DEFAULT_LIMIT
from services.http import openapi
from services.http.container import Services
from services.http.current import caching
from services.http.errors import refusal
from services.http.pages import Asked, Quick, Raw, Ready, answer, asked_of, http_date
from services.http.parsing import known_story
from services.reader.assets import IMMUTABLE, REVALIDATE, Assets
from services.reader.feed import MEDIA_TYPE, render_feed
from services.reader.policy import page_headers
from services.reader.render import full_date, message_page, parse_time, render_page
from services.settings import Settings
from services.store.record import Store

HTML = "text/html"
CURSOR_DIGITS = 18
"""Digits a ``before`` cursor may have (the API's cursors are versions, far below 10**18)."""
NO_GATEWAY = "'none'"
"""The frozen page's gateway: it connects nowhere."""
_HOSTNAME = re.compile(r"[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\]")
_ASSETS = Assets()
BUILD = hashlib.sha256("".join(sorted(_ASSETS.hashes.values())).encode()).hexdigest()[:8]
"""The build of the page's static files: part of the page's ETag, so a deploy that changes
them is never answered 304 with a page that names the old ones."""

PAGES = {
    "bad_request": ("Bad page", "That link to older updates is not valid."),
    "unknown_story": ("No such live blog", "There is no live blog called {story}."),
}
"""The title and text of the reader's own refusals; anything else is ``UNAVAILABLE``."""
UNAVAILABLE = (
    "Temporarily unavailable",
    "This live blog cannot be shown right now. Please try again in a moment.",
)

PAGE_DOC = {
    "responses": {
        str(status): {"description": text, "content": {"text/html": {"schema": {"type": "string"}}}}
        for status, text in (
            (200, "the page"),
            (400, "a page saying the link to older updates is not valid"),
            (404, "a page saying there is no such live blog"),
            (503, "a page asking to try again (Retry-After)"),
        )
    }
    | openapi.NOT_MODIFIED
}
"""The reader page's answers: every one a page for people, in HTML (CONTRACT "Reader page")."""
STATIC_DOC = {
    "responses": {
        "200": {
            "description": "the page's script or stylesheet",
            "content": {
                kind: {"schema": {"type": "string"}} for kind in sorted(set(_ASSETS.TYPES.values()))
            },
        },
        "404": {
            "description": "not_found: no such file",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
        },
    }
    | openapi.NOT_MODIFIED
}
"""The static files' answers."""


def ws_url_for(request: Request, settings: Settings) -> str:
    """The gateway URL for this page: ``DATELINE_WS_URL``, else the gateway beside this API.

    When the API listens on every address, "beside" means the host the reader asked for.
    """
    if settings.ws_url or settings.host not in ("0.0.0.0", "::"):  # noqa: S104 - names, not binds
        return settings.public_ws_url()
    host = request.url.hostname or ""
    if not _HOSTNAME.fullmatch(host):
        return settings.public_ws_url()
    scheme = "wss" if request.url.scheme == "https" else "ws"
    return f"{scheme}://{host}:{settings.ws_port}/ws"


def cursor(raw: str | None) -> int | None:
    """The page's ``before`` cursor: a positive integer, else 400 ``bad_request``.

    Unlike the API's query integers, one too long is refused, not clamped: only a link this
    page wrote is a cursor, and a person is better told that a link is broken.
    """
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit() and 0 < len(raw) <= CURSOR_DIGITS) or int(raw) < 1:
        raise BadRequest("before must be a positive integer", {"parameter": "before"})
    return int(raw)


def page_url(request: Request) -> str:
    """The page's own URL, without query or fragment (its JSON-LD ``@id``)."""
    return str(request.url.replace(query="", fragment=""))


def _page(
    request: Request,
    state: dict[str, Any],
    opened: list[Envelope],
    ws: str,
    now: datetime | None,
    *,
    before: int | None = None,
    frozen: str | None = None,
) -> tuple[str, dict[str, str]]:
    """The page at ``state["version"]`` and its policy headers (the same for every reader)."""
    body = render_page(
        state,
        opened_at=opened[0].recorded_at if opened else None,
        url=page_url(request),
        ws_url=ws,
        assets=_ASSETS,
        now=now,
        before=before,
        frozen=frozen,
    )
    loader = "'none'" if frozen else _ASSETS.loader_source
    return body, page_headers(loader, ws)


def variant(scope: Scope, asked: Asked, before: int | None) -> Hashable:
    """Which kept page a request is for: its ``before``, and what its page URL and its gateway
    URL are made of (scheme, ``Host``, path: ``page_url`` and ``ws_url_for`` read nothing else),
    so two requests with the same variant are the same page, without building either URL."""
    return (before, scope["scheme"], asked.get(b"host"), scope.get("root_path", ""), scope["path"])


def page_etag(version: int) -> str:
    """The reader page's strong validator: its version and the build of its static files."""
    return f'"{version}-{BUILD}"'


FEED_FORMAT = "atom1"
"""The feed's format, in its validator: a deploy that changes the feed is never answered 304."""


def feed_etag(version: int) -> str:
    """The Atom feed's strong validator: the story's version and the feed's format."""
    return f'"{version}-{FEED_FORMAT}"'


FEED_DOC = {
    "responses": {
        "200": {
            "description": "the story's Atom 1.0 feed (RFC 4287; retractions as RFC 6721"
            " at:deleted-entry)",
            "content": {"application/atom+xml": {"schema": {"type": "string"}}},
        },
        "404": {
            "description": "unknown_story",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
        },
        "503": {
            "description": "store_unavailable (Retry-After)",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
        },
    }
    | openapi.NOT_MODIFIED
}
"""The feed's answers: a feed reader gets the API's JSON refusals, as any client."""


async def frozen_page(
    store: Store, request: Request, state: dict[str, Any], at: str | None
) -> Response:
    """The reader page as it stood at ``state["version"]``: for auditors, with no live script."""
    opened = await store.read(str(state["story"]), 1, 1)
    moment = at or str(state["updated_at"])
    banner = (
        f"Archived view: this live blog as readers saw it at version {state['version']}, "
        f"{full_date(moment)}. It does not update."
    )
    body, headers = _page(request, state, opened, NO_GATEWAY, parse_time(moment), frozen=banner)
    headers["Cache-Control"] = "no-cache, private"  # an auditor's view: not for shared caches
    return Response(body, 200, headers, media_type=HTML)


def _static_files() -> dict[str, tuple[Ready, Ready]]:
    """Each static file's two answers, by every name it is served at: (immutable, revalidated)."""
    served: dict[str, tuple[Ready, Ready]] = {}
    for name, body in _ASSETS.files.items():
        etag, kind = f'"{_ASSETS.hashes[name]}"', _ASSETS.TYPES[name]
        vary = {"Vary": "Accept-Encoding"}  # nosniff is on every answer (http/security.py)
        pair = (
            Ready(0, body, kind, etag, {"Cache-Control": IMMUTABLE, **vary}),
            Ready(0, body, kind, etag, {"Cache-Control": REVALIDATE, **vary}),
        )
        for ready in pair:  # compressed now, at the best quality: once per process
            ready.compress_now()
        for alias, real in _ASSETS.names.items():
            if real == name:
                served[alias] = pair
    return served


def quick(settings: Settings, services: Services) -> Quick:
    """``GET /live/{story}`` with no query, answered from what this process knows (a 304 or
    kept bytes at the tail's version), or None: the route then answers it. The variant is the
    route's own: no ``before``, the page's URL and the gateway's, as this request names them."""
    known = services.current.known

    def answer(scope: Scope, asked: Asked, story: str) -> Raw | None:
        if not is_id(story):
            return None
        return known(asked, "page", story, variant(scope, asked, None), page_etag)

    return answer


def router(settings: Settings, services: Services) -> APIRouter:
    """``GET /live/{story}`` and its two static files (each also ``HEAD``)."""
    store, reads, current, refusals = (
        services.store,
        services.reads,
        services.current,
        services.refusals,
    )
    static_files = _static_files()
    routes = APIRouter(tags=["reader"])

    def refused(error: DatelineError, story: str, ws: str) -> Response:
        """The page for a refusal, with the status and headers ``refusal()`` decides."""
        answer = refusal(error, refusals, page_codes=PAGES.keys())
        title, text = PAGES.get(answer.code, UNAVAILABLE)
        body = message_page(answer.status, title, text.format(story=story), _ASSETS)
        headers = page_headers("'none'", ws) | {"Cache-Control": "no-cache"} | answer.headers
        return Response(body, answer.status, headers, media_type=HTML)

    @routes.api_route(
        "/live/{story}",
        methods=["GET", "HEAD"],
        response_class=Response,
        openapi_extra=openapi.access("public") | openapi.CONDITIONAL | PAGE_DOC,
    )
    async def live(story: str, request: Request) -> Response:
        """The reader page: server-rendered once per version, then live through the gateway."""
        ws = ws_url_for(request, settings)
        try:
            before = cursor(request.query_params.get("before"))
            known_story(story)
        except DatelineError as error:
            return refused(error, story, ws)

        async def build() -> Ready:
            state = await reads.story(story, DEFAULT_LIMIT, before)
            opened = await store.read(story, 1, 1)
            body, headers = _page(request, state, opened, ws, None, before=before)
            version = int(state["version"])  # type: ignore[arg-type]  # a state has its version
            return Ready(
                version,
                body.encode(),
                "text/html; charset=utf-8",
                page_etag(version),
                headers | caching(settings, story),
                http_date(str(state["updated_at"])),
            )

        try:
            return await current.respond(
                request,
                "page",
                story,
                variant(request.scope, asked_of(request), before),
                page_etag,
                build,
            )
        except DatelineError as error:
            return refused(error, story, ws)

    @routes.api_route(
        "/live/{story}/feed.atom",
        methods=["GET", "HEAD"],
        response_class=Response,
        openapi_extra=openapi.access("public") | openapi.CONDITIONAL | FEED_DOC,
    )
    async def feed(story: str, request: Request) -> Response:
        """The story's Atom feed: its entries newest first, corrections in their content,
        retractions as tombstones; cached and conditional like the page."""
        known_story(story)

        async def build() -> Ready:
            state = await reads.story(story, DEFAULT_LIMIT, None)
            here = page_url(request)
            body = render_feed(state, here.removesuffix("/feed.atom"), here)
            version = int(state["version"])  # type: ignore[arg-type]  # a state has its version
            return Ready(
                version,
                body,
                MEDIA_TYPE,
                feed_etag(version),
                caching(settings, story),
                http_date(str(state["updated_at"])),
            )

        return await current.respond(
            request,
            "feed",
            story,
            variant(request.scope, asked_of(request), None),
            feed_etag,
            build,
        )

    @routes.api_route(
        "/static/{name}",
        methods=["GET", "HEAD"],
        openapi_extra=openapi.access("public") | openapi.CONDITIONAL | STATIC_DOC,
    )
    async def static(name: str, request: Request) -> Response:
        """The page's script and stylesheet; immutable when asked for by content hash."""
        pair = static_files.get(name)
        if pair is None:
            raise NotFound(f"no static file {name!r}")
        immutable = _ASSETS.immutable(name, request.query_params.get("v"))
        return answer(pair[0] if immutable else pair[1], request)

    return routes
