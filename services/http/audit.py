"""The auditor's reads: history, replay, revisions and the chain re-walked (auditor or admin).

CONTRACT "HTTP API" and "Listings": ``GET …/events`` pages envelopes in version order (limit
``EVENTS_LIMIT`` by default, at most ``EVENTS_MAX``) as their stored bytes; ``…/replay`` takes
exactly one of ``version`` and ``at``, and ``format=html`` gives the reader page frozen as it
stood then; ``…/revisions`` every body an entry has had; ``…/verify`` the chain's verdict.
"""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Query, Request, Response

from events.errors import BadRequest, UnknownStory
from projections.story import DEFAULT_LIMIT, MAX_LIMIT
from services.http import openapi
from services.http.auth import principal
from services.http.container import Services
from services.http.parsing import known_entry, known_story, query_int
from services.http.reader import frozen_page
from services.http.responses import JSON, json_response

EVENTS_LIMIT, EVENTS_MAX = 1000, 10_000
"""Envelopes a history page holds by default, and at most (CONTRACT "Listings")."""
SHAPES = ("json", "html")
"""What ``format`` a replay may ask for."""
REPLAY_HTML = {
    "responses": {"200": {"content": {"text/html": {"schema": {"type": "string"}}}}},
}
"""A replay's other answer: with ``format=html``, the reader page frozen as it stood then."""


def router(services: Services) -> APIRouter:
    """The audit routes."""
    tokens, store, audit = services.tokens, services.store, services.audit
    routes = APIRouter(tags=["audit"])

    @routes.api_route(
        "/stories/{story}/events",
        methods=["GET", "HEAD"],
        openapi_extra=openapi.access("auditor"),
        responses=openapi.answers(200, openapi.EventsPage, 400, 401, 403, 404, 503),
    )
    async def get_events(
        story: str,
        request: Request,
        from_version: str | None = None,
        to_version: str | None = None,
        limit: str | None = None,
    ) -> Response:
        """The story's envelopes in version order (auditor or admin)."""
        await principal(tokens, request, "auditor")
        known_story(story)
        start = query_int(request, "from_version", 1, 1) or 1
        end = query_int(request, "to_version", None, 1)
        size = query_int(request, "limit", EVENTS_LIMIT, 1, EVENTS_MAX) or EVENTS_LIMIT
        head, _ = await store.head(story)
        if head == 0:
            raise UnknownStory(f"story {story!r} does not exist")
        rows = await store.read_raw(story, start, end, size)
        last = min(head, end) if end else head
        following = rows[-1][0] + 1 if rows and rows[-1][0] < last else None
        body = b'{"events":[' + b",".join(raw for _, raw in rows) + b'],"next_from_version":'
        body += orjson.dumps(following) + b"}"
        return Response(body, media_type=JSON)

    @routes.api_route(
        "/stories/{story}/replay",
        methods=["GET", "HEAD"],
        response_model=None,
        openapi_extra=openapi.access("auditor") | REPLAY_HTML,
        responses=openapi.answers(200, openapi.StoryState, 400, 401, 403, 404, 503),
    )
    async def get_replay(
        story: str,
        request: Request,
        version: str | None = None,
        at: str | None = None,
        limit: str | None = None,
        before: str | None = None,
        shape: Annotated[str | None, Query(alias="format")] = None,
    ) -> Response:
        """The story as it stood at ``version`` or at the moment ``at`` (auditor or admin).

        ``format=html`` gives the reader page frozen as it stood then, with no live script.
        """
        await principal(tokens, request, "auditor")
        known_story(story)
        wanted = query_int(request, "version", None, 1)
        moment = request.query_params.get("at")
        if (wanted is None) == (moment is None):
            raise BadRequest(
                "give exactly one of version and at", {"parameters": ["version", "at"]}
            )
        size = query_int(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT) or DEFAULT_LIMIT
        cursor = query_int(request, "before", None, 1)
        if shape is None:
            shape = "json"
        elif shape not in SHAPES:
            raise BadRequest("format is json or html", {"parameter": "format"})
        if moment is not None:
            wanted, moment = await audit.version_at(story, moment)
        assert wanted is not None  # exactly one of version and at, checked above
        state = await audit.replay(story, wanted, size, cursor)
        if shape == "html":
            return await frozen_page(store, request, state, moment)
        return json_response(state)

    @routes.api_route(
        "/stories/{story}/entries/{entry}/revisions",
        methods=["GET", "HEAD"],
        openapi_extra=openapi.access("auditor"),
        responses=openapi.answers(200, openapi.Revisions, 401, 403, 404, 503),
    )
    async def get_revisions(story: str, entry: str, request: Request) -> Response:
        """Every body the entry has had, with who, when, the note and a diff (auditor or admin)."""
        await principal(tokens, request, "auditor")
        known_story(story)
        known_entry(story, entry)
        return json_response(await audit.revisions(story, entry))

    @routes.api_route(
        "/stories/{story}/verify",
        methods=["GET", "HEAD"],
        openapi_extra=openapi.access("auditor"),
        responses=openapi.answers(200, openapi.Verdict, 401, 403, 404, 503),
    )
    async def get_verify(story: str, request: Request) -> Response:
        """Re-walk the hash chain from the record alone (auditor or admin)."""
        await principal(tokens, request, "auditor")
        known_story(story)
        result = await audit.verify(story)
        return json_response(
            {
                "ok": result.ok,
                "events": result.events,
                "head_hash": result.head_hash,
                "first_bad_version": result.first_bad_version,
            }
        )

    return routes
