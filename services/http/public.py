"""Public reads of current state: ``GET /stories`` and ``GET /stories/{story}`` (no token).

``GET /stories/{story}`` carries the strong ``ETag: "<version>"`` and answers 304 to a matching
``If-None-Match`` (compared weakly, RFC 9110 13.1.2); ``min_version`` waits for the projection
to reach that version, then 504 ``projection_lagging`` (CONTRACT "HTTP API", "min_version").
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from projections.story import DEFAULT_LIMIT, MAX_LIMIT
from services.http.container import Services
from services.http.parsing import known_story, query_int
from services.http.responses import json_response

STORIES_LIMIT = 1000
"""How many stories ``GET /stories`` lists at most (and by default)."""


def router(services: Services) -> APIRouter:
    """The public read routes."""
    reads = services.reads
    routes = APIRouter(tags=["read"])

    @routes.get("/stories")
    async def list_stories(request: Request) -> Response:
        """Stories, newest activity first."""
        limit = query_int(request, "limit", STORIES_LIMIT, 1, STORIES_LIMIT) or STORIES_LIMIT
        return json_response({"stories": await reads.stories(limit)})

    @routes.get("/stories/{story}")
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
        if wanted:
            await reads.wait_for(story, wanted)
        state = await reads.story(story, size, cursor)
        etag = f'"{state["version"]}"'
        tags = {
            t.strip().removeprefix("W/")
            for t in request.headers.get("if-none-match", "").split(",")
        }
        if etag in tags or "*" in tags:  # If-None-Match compares weakly (RFC 9110, 13.1.2)
            return Response(status_code=304, headers={"ETag": etag})
        return json_response(state, headers={"ETag": etag})

    return routes
