"""The reader's routes: ``GET /live/{story}``, its static files, and the frozen page of a replay.

CONTRACT.md "Reader page". People get HTML, never the API's JSON: a refusal (no such story, a bad
``before`` cursor, a store that is down) is decided by the API's one mapping,
``services.http.errors.refusal()`` (status, code, headers, and the refusal counted),
and only its page is rendered here. The gateway named on the page is ``DATELINE_WS_URL``, else
the gateway beside this API.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import Counter

from events.chain import Envelope
from events.errors import BadRequest, DatelineError, NotFound
from projections.story import DEFAULT_LIMIT
from services.http.errors import refusal
from services.http.parsing import known_story
from services.reader.assets import Assets
from services.reader.policy import nonce, page_headers
from services.reader.render import full_date, message_page, parse_time, render_page
from services.settings import Settings
from services.store.readmodel import ReadModel
from services.store.record import Store

HTML = "text/html"
CURSOR_DIGITS = 18
"""Digits a ``before`` cursor may have (the API's cursors are versions, far below 10**18)."""
NO_GATEWAY = "'none'"
"""The frozen page's gateway: it connects nowhere."""
_HOSTNAME = re.compile(r"[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\]")
_ASSETS = Assets()

PAGES = {
    "bad_request": ("Bad page", "That link to older updates is not valid."),
    "unknown_story": ("No such live blog", "There is no live blog called {story}."),
}
"""The title and text of the reader's own refusals; anything else is ``UNAVAILABLE``."""
UNAVAILABLE = (
    "Temporarily unavailable",
    "This live blog cannot be shown right now. Please try again in a moment.",
)


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


def _rendered(
    request: Request,
    state: dict[str, Any],
    opened: list[Envelope],
    ws: str,
    now: datetime,
    *,
    before: int | None = None,
    frozen: str | None = None,
) -> Response:
    """The page at ``state["version"]``, under the policy of a fresh nonce."""
    token = nonce()
    body = render_page(
        state,
        opened_at=opened[0].recorded_at if opened else None,
        url=page_url(request),
        ws_url=ws,
        nonce=token,
        assets=_ASSETS,
        now=now,
        before=before,
        frozen=frozen,
    )
    return Response(body, 200, page_headers(token, ws), media_type=HTML)


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
    return _rendered(request, state, opened, NO_GATEWAY, parse_time(moment), frozen=banner)


def router(settings: Settings, store: Store, reads: ReadModel, refusals: Counter) -> APIRouter:
    """``GET /live/{story}`` and its two static files."""
    assets = _ASSETS
    routes = APIRouter(tags=["reader"])

    def refused(error: DatelineError, story: str, ws: str) -> Response:
        """The page for a refusal, with the status and headers ``refusal()`` decides."""
        answer = refusal(error, refusals, page_codes=PAGES.keys())
        title, text = PAGES.get(answer.code, UNAVAILABLE)
        token = nonce()
        body = message_page(answer.status, title, text.format(story=story), token, assets)
        headers = page_headers(token, ws) | answer.headers
        return Response(body, answer.status, headers, media_type=HTML)

    @routes.get("/live/{story}", response_class=Response)
    async def live(story: str, request: Request) -> Response:
        """The reader page: server-rendered, then live through the gateway."""
        ws = ws_url_for(request, settings)
        try:
            before = cursor(request.query_params.get("before"))
            known_story(story)
            state = await reads.story(story, DEFAULT_LIMIT, before)
            opened = await store.read(story, 1, 1)
        except DatelineError as error:
            return refused(error, story, ws)
        return _rendered(request, state, opened, ws, datetime.now(UTC), before=before)

    @routes.get("/static/{name}", include_in_schema=False)
    async def static(name: str, request: Request) -> Response:
        """The page's script and stylesheet; immutable when asked for by content hash."""
        if name not in assets.files:
            raise NotFound(f"no static file {name!r}")
        headers = assets.headers(name, request.query_params.get("v"))
        if request.headers.get("if-none-match") == headers["ETag"]:
            return Response(status_code=304, headers=headers)
        return Response(assets.files[name], 200, headers, media_type=assets.TYPES[name])

    return routes
