"""What a request says, read as the contract says it may be said (CONTRACT.md "Errors", "Edges").

Rules: writes take ``application/json`` (else 415), at most ``Settings.max_body`` bytes, counted
as they arrive as well as declared (else 413), a JSON object nested at most ``MAX_DEPTH`` levels
(else 400); integer query parameters are ASCII digits, clamped to their maximum (else 400); a
story or entry id that breaks the id pattern names nothing, so it is simply unknown (404).
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request

from events.errors import (
    BadRequest,
    PayloadTooLarge,
    UnknownEntry,
    UnknownStory,
    UnsupportedMediaType,
)
from events.ids import is_id
from services.http.responses import JSON

MAX_DEPTH = 64
"""Deepest JSON nesting accepted (CONTRACT "Edges"); deeper is 400 ``bad_request``."""
QUERY_CEILING = 10**18
"""Integer query parameters larger than this are read as this (no story gets that long)."""


def _depth_ok(value: Any) -> bool:
    """Whether ``value`` nests at most ``MAX_DEPTH`` levels (iterative: no recursion limit)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            if depth > MAX_DEPTH:
                return False
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            if depth > MAX_DEPTH:
                return False
            stack.extend((v, depth + 1) for v in item)
    return True


async def json_body(request: Request, limit: int) -> dict[str, Any]:
    """The request's JSON object: 415, 413 and 400 as the contract says."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != JSON:
        raise UnsupportedMediaType("writes take application/json", {"content_type": media or None})
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"bodies are limited to {limit} bytes", {"limit": limit})
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"bodies are limited to {limit} bytes", {"limit": limit})
        chunks.append(chunk)
    try:
        body = orjson.loads(b"".join(chunks))
    except orjson.JSONDecodeError as error:
        raise BadRequest(f"invalid JSON: {error}") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    if not _depth_ok(body):
        raise BadRequest(f"JSON nested deeper than {MAX_DEPTH} levels")
    return body


def query_int(
    request: Request, name: str, default: int | None, low: int = 0, high: int | None = None
) -> int | None:
    """An integer query parameter, clamped to ``high``; anything else is 400 ``bad_request``."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()):
        raise BadRequest(f"{name} must be an integer of at least {low}", {"parameter": name})
    digits = raw.lstrip("0") or "0"
    # Past QUERY_CEILING no version exists; capping keeps stream ids valid and int() cheap.
    value = int(digits) if len(digits) <= 18 else QUERY_CEILING
    if value < low:
        raise BadRequest(f"{name} must be an integer of at least {low}", {"parameter": name})
    return min(value, high) if high is not None else value


def known_story(story: str) -> str:
    """A story id from a path: one that cannot exist is simply unknown (CONTRACT "Errors")."""
    if not is_id(story):
        raise UnknownStory(f"story {story!r} does not exist")
    return story


def known_entry(story: str, entry: str) -> str:
    """An entry id from a path, the same way: one that cannot exist is unknown."""
    if not is_id(entry):
        raise UnknownEntry(f"entry {entry!r} does not exist in story {story!r}")
    return entry
