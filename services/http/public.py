"""Public reads of current state: ``GET /stories`` and ``GET /stories/{story}`` (no token).

``GET /stories/{story}`` carries the strong ``ETag: "<version>"`` and answers 304 to a matching
``If-None-Match`` (compared weakly, RFC 9110 13.1.2); ``min_version`` waits for the projection
to reach that version, then 504 ``projection_lagging`` (CONTRACT "HTTP API", "min_version").
Each page of a story is built once per version and served as ready bytes (``current.py``), with
the caching headers a CDN needs; both routes answer ``HEAD`` too.
"""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request, Response
from starlette.types import Scope

from events.ids import is_id
from projections.story import DEFAULT_LIMIT, MAX_LIMIT
from services.http import openapi
from services.http.container import Services
from services.http.current import caching
from services.http.pages import Asked, Quick, Raw, Ready, http_date
from services.http.parsing import known_story, query_int
from services.http.responses import JSON, json_response

STORIES_LIMIT = 1000
"""How many stories ``GET /stories`` lists at most (and by default)."""


def state_etag(version: int) -> str:
    """The state's strong validator (CONTRACT "ETag": ``"<version>"``)."""
    return f'"{version}"'


def quick(services: Services) -> Quick:
    """``GET /stories/{story}`` with no query, answered from what this process knows (a 304 or
    kept bytes at the tail's version), or None: the route then answers it (``current.py``)."""
    known = services.current.known
    variant = (DEFAULT_LIMIT, None)  # the route's (limit, before) when the query is empty

    def answer(scope: Scope, asked: Asked, story: str) -> Raw | None:
        return known(asked, "state", story, variant, state_etag) if is_id(story) else None

    return answer


def router(services: Services) -> APIRouter:
    """The public read routes."""
    reads, current, settings = services.reads, services.current, services.settings
    routes = APIRouter(tags=["read"])

    @routes.api_route(
        "/stories",
        methods=["GET", "HEAD"],
        openapi_extra=openapi.access("public"),
        responses=openapi.answers(200, openapi.StoryList, 400, 503),
    )
    async def list_stories(request: Request) -> Response:
        """Stories, newest activity first."""
        limit = query_int(request, "limit", STORIES_LIMIT, 1, STORIES_LIMIT) or STORIES_LIMIT
        return json_response({"stories": await reads.stories(limit)})

    @routes.api_route(
        "/stories/{story}",
        methods=["GET", "HEAD"],
        openapi_extra=openapi.access("public") | openapi.CONDITIONAL,
        responses=openapi.answers(200, openapi.StoryState, 400, 404, 503, 504)
        | openapi.NOT_MODIFIED,
    )
    async def get_story(
        story: str,
        request: Request,
        limit: str | None = None,
        before: str | None = None,
        min_version: str | None = None,
    ) -> Response:
        """Current state, one page of entries newest first; ETag, 304, ``min_version`` waits."""
        known_story(story)
        size = query_int(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT) or DEFAULT_LIMIT
        cursor = query_int(request, "before", None, 1)
        wanted = query_int(request, "min_version", None, 0)

        async def build() -> Ready:
            state = await reads.story(story, size, cursor)
            version = int(state["version"])  # type: ignore[arg-type]  # a state has its version
            return Ready(
                version,
                orjson.dumps(state),
                JSON,
                state_etag(version),
                caching(settings, story),
                http_date(str(state["updated_at"])),
            )

        return await current.respond(
            request, "state", story, (size, cursor), state_etag, build, wanted
        )

    return routes
