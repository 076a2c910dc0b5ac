"""The newsroom's writes: ``POST /stories`` and ``POST /stories/{story}/events`` (CONTRACT "HTTP API").

This is the API's hot path, kept lean on purpose (docs/architecture.md, "Hot path"): a handler
reads the raw body with a size cap, parses it with orjson, validates only the event's ``data``
with its pydantic command model, and answers with the envelope's stored JSON bytes, never
re-serialized. ``POST /stories/{story}/events`` also has a direct route that ``front`` dispatches
without FastAPI; it answers exactly as the declared route does, errors through ``refusal()``.
An ``Idempotency-Key`` claim is released when the write is refused, except when the refusal is
that very key reused (the claim is its first request's).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import JsonValue

from events.base import Command
from events.chain import Envelope
from events.decide import parse_command, parse_open
from events.errors import BadRequest, DatelineError, IdempotencyKeyReused, InvalidEvent
from events.story import OpenStory
from services import faults
from services.http import openapi
from services.http.auth import writer
from services.http.container import Services
from services.http.errors import refusal
from services.http.parsing import json_body, known_story
from services.http.responses import JSON
from services.store.record import Keyed
from services.store.tokens import Principal

log = logging.getLogger("dateline.api")

DirectWrite = Callable[[Request, str], Awaitable[Response]]
"""The direct write route: the request and the story id from its path."""
EVENT_FIELDS = frozenset({"type", "data", "expected_version"})
"""What a ``POST /stories/{story}/events`` body may hold; anything else is refused."""
KEY_LENGTH = 255
"""The longest ``Idempotency-Key`` accepted (1 to 255 characters; else 400 ``bad_request``)."""
OPEN_DOC = openapi.body(OpenStory) | openapi.access("editor") | openapi.IDEMPOTENCY
EVENT_DOC = openapi.body(openapi.EventRequest) | openapi.access("editor") | openapi.IDEMPOTENCY
WRITE_ERRORS = (400, 401, 403, 409, 413, 415, 422, 429, 503)
"""What a write may be refused with (CONTRACT "HTTP API", "Errors"); an event's also 404."""


def routes(services: Services) -> tuple[APIRouter, DirectWrite]:
    """The write routes, and the direct one ``front`` dispatches."""
    tokens, limits, store, appends = (
        services.tokens,
        services.limits,
        services.store,
        services.appends,
    )
    limit = services.settings.max_body
    router = APIRouter(tags=["write"])

    def keyed(request: Request, who: Principal, body: Any) -> Keyed | None:
        key = request.headers.get("idempotency-key")
        if key is None:
            return None
        if not key or len(key) > KEY_LENGTH:
            raise BadRequest(f"Idempotency-Key must be 1 to {KEY_LENGTH} characters")
        return Keyed.of(who.token_hash, key, request.method, request.url.path, body)

    async def append(
        request: Request,
        story: str,
        command: Command,
        who: Principal,
        body: Any,
        expected: int | None = None,
    ) -> Response:
        k = keyed(request, who, body)
        try:
            done = await store.append(
                story, command, actor=who.actor, expected_version=expected, keyed=k
            )
        except IdempotencyKeyReused:
            raise  # the claim belongs to the key's first request: keep it
        except DatelineError:
            if k is not None:
                await store.release(k)
            raise
        if done.envelope is not None:
            appends.labels(done.envelope.type).inc()
        if faults.ARMED:  # a test's fault point: stored, not yet answered
            faults.reached("api.replying")
        return Response(done.body, 201, media_type=JSON)

    @router.post(
        "/stories",
        status_code=201,
        openapi_extra=OPEN_DOC,
        responses=openapi.answers(201, Envelope, *WRITE_ERRORS, description="the envelope"),
    )
    async def open_story(request: Request) -> Response:
        """Open a story: appends ``story.opened`` as version 1 (editor or admin)."""
        who = await writer(tokens, limits, request, "editor")
        body = await json_body(request, limit)
        command = parse_open(body)
        return await append(request, command.story, command, who, body)

    @router.post(
        "/stories/{story}/events",
        status_code=201,
        openapi_extra=EVENT_DOC,
        responses=openapi.answers(201, Envelope, 404, *WRITE_ERRORS, description="the envelope"),
    )
    async def post_event(story: str, request: Request) -> Response:
        """Decide and append one event: ``{type, data, expected_version?}`` (editor or admin)."""
        who = await writer(tokens, limits, request, "editor")
        known_story(story)
        body = await json_body(request, limit)
        extra = body.keys() - EVENT_FIELDS
        if extra:
            names = sorted(extra)
            details: JsonValue = {"fields": list[JsonValue](names)}
            raise InvalidEvent(f"unknown fields: {', '.join(names)}", details)
        expected = body.get("expected_version")
        if expected is not None and (type(expected) is not int or expected < 0):
            raise InvalidEvent(
                "expected_version must be a non-negative integer", {"field": "expected_version"}
            )
        if "type" not in body or "data" not in body:
            raise InvalidEvent("an event needs type and data", {"fields": ["type", "data"]})
        command = parse_command(body["type"], body["data"])
        return await append(request, story, command, who, body, expected)

    async def post_event_direct(request: Request, story: str) -> Response:
        """The write route without the framework: every error answered by ``refusal()``."""
        try:
            return await post_event(story, request)
        except Exception as error:  # every exception, a bug too, gets the contract's answer
            if not isinstance(error, DatelineError):
                log.exception("POST %s failed", request.url.path)
            return refusal(error, services.refusals).json()

    return router, post_event_direct
