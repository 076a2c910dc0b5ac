"""The API's OpenAPI document (``/openapi.json``): what each route takes, who may call it, and
every answer it gives, so a client generated from it, or a fuzzer, meets no surprise.

Rules (CONTRACT.md "HTTP API", "Errors"; tests/faults/test_fuzz.py holds the server to them):

- Every route declares each status it can answer; every error status is the contract's body
  ``{"error": {"code", "message", "details"}}`` (``ErrorBody``), whose description names the codes.
  The reader page alone answers people, in HTML, errors included.
- The handlers read their inputs themselves (``parsing.py``): a request the framework would
  refuse with 422 is refused by the server with 400 ``bad_request``, so FastAPI's own 422
  (``HTTPValidationError``) is taken out of the document.
- Each operation says who may call it in ``x-dateline-role`` (``public``, ``editor``, ``auditor``,
  ``admin``; an admin may do all) and, when not public, needs the ``bearer`` scheme.
- A route that answers ``GET`` and ``HEAD`` is two operations, each with its own ``operationId``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from events.chain import Envelope
from events.decide import COMMANDS
from events.stamp import Role
from services.http.responses import JSON

EVENT_TYPES = tuple(sorted(set(COMMANDS) - {"story.opened"}))
"""The types ``POST /stories/{story}/events`` takes (``story.opened`` only by ``POST /stories``)."""
Access = Role | Literal["public"]
"""Who may call a route: anyone, or a token of that role (or an admin's)."""

ERROR_CODES: dict[int, str] = {
    400: "bad_request: invalid JSON, a body that is not an object, bad query parameters or cursors",
    401: "unauthorized: no Bearer token, or an unknown or revoked one",
    403: "forbidden: the token's role may not do this",
    404: "unknown_story, unknown_entry or unknown_token (also for an id that breaks the pattern)",
    409: "story_exists, entry_exists, story_closed, version_conflict (details.current_version), "
    "invalid_state or token_name_taken",
    413: "payload_too_large: a body over the limit (256 KiB by default)",
    415: "unsupported_media_type: writes take application/json",
    422: "invalid_event, invalid_request or idempotency_key_reused (details: what was refused)",
    429: "rate_limited: the token's write allowance is spent; Retry-After and details.retry_after",
    503: "store_unavailable: the store cannot be reached; Retry-After",
    504: "projection_lagging: min_version was not reached within 5 s",
}
"""Each error status a route may declare, and the contract's codes behind it."""


class Error(BaseModel):
    """The contract's error: a code to act on, a message for people, details of what was refused."""

    model_config = ConfigDict(extra="forbid")

    code: str
    message: str
    details: JsonValue = Field(...)


class ErrorBody(BaseModel):
    """Every API error's body (CONTRACT "HTTP API")."""

    model_config = ConfigDict(extra="forbid")

    error: Error


class StorySummary(BaseModel):
    """One story of ``GET /stories``."""

    story: str
    title: str
    status: Literal["live", "closed"]
    version: int
    updated_at: str


class StoryList(BaseModel):
    """``GET /stories``: stories, newest activity first."""

    stories: list[StorySummary]


class StoryState(BaseModel):
    """A story's state (CONTRACT "Story state"): current, or replayed as it stood."""

    story: str
    title: str
    summary: str | None
    status: Literal["live", "closed"]
    closed_note: str | None
    version: int
    updated_at: str
    pinned: dict[str, JsonValue] | None
    key_events: list[dict[str, JsonValue]]
    entries: list[dict[str, JsonValue]]
    next_before: str | int | None


class EventsPage(BaseModel):
    """``GET …/events``: envelopes in version order, and where the next page starts."""

    events: list[Envelope]
    next_from_version: int | None


class Revision(BaseModel):
    """One body an entry has had."""

    version: int
    type: str
    actor: str
    recorded_at: str
    body: str | None
    headline: str | None
    note: str | None
    diff: str


class Revisions(BaseModel):
    """``GET …/revisions``: every body the entry has had, in version order."""

    story: str
    entry_id: str
    revisions: list[Revision]


class Verdict(BaseModel):
    """``GET …/verify``: the hash chain re-walked from the record alone."""

    ok: bool
    events: int
    head_hash: str | None
    first_bad_version: int | None


class EventRequest(BaseModel):
    """``POST /stories/{story}/events``: an event's type and data (CONTRACT "Event types");
    ``data`` is checked against the type's command (``events/decide.py``), else 422."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(json_schema_extra={"enum": list(EVENT_TYPES)})
    data: dict[str, JsonValue]
    expected_version: int | None = Field(default=None, ge=0)


class TokenRequest(BaseModel):
    """``POST /tokens``: the new token's role and, optionally, its name."""

    model_config = ConfigDict(extra="forbid")

    role: Role
    name: str | None = None


class TokenCreated(BaseModel):
    """A token, shown this once."""

    token: str
    role: str
    name: str


class Health(BaseModel):
    """``GET /healthz``: the store is reachable; how many stories' projections are parked."""

    ok: bool
    store: str
    projection: Literal["ok", "parked"]
    parked: int


class Parked(BaseModel):
    """``GET /projection/parked``: every parked story, with the event and error that parked it."""

    parked: list[dict[str, JsonValue]]


def refused(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The error answers a route declares: each status, its codes, the contract's body."""
    return {s: {"model": ErrorBody, "description": ERROR_CODES[s]} for s in statuses}


def answers(
    status: int,
    model: type[BaseModel] | None,
    *errors: int,
    media: str = JSON,
    description: str = "done",
) -> dict[int | str, dict[str, Any]]:
    """A route's ``responses=``: its success (``model`` as ``media``, or no body) and errors."""
    done: dict[str, Any] = {"description": description}
    if model is not None:
        done["model"] = model
    elif media != JSON:
        done["content"] = {media: {"schema": {"type": "string"}}}
    return {status: done, **refused(*errors)}


def body(model: type[BaseModel]) -> dict[str, Any]:
    """A route's ``openapi_extra`` request body (the handlers read it raw, so FastAPI cannot)."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)  # each is a component already (``document`` checks every $ref)
    return {"requestBody": {"required": True, "content": {JSON: {"schema": schema}}}}


def access(role: Access) -> dict[str, Any]:
    """A route's ``openapi_extra`` naming who may call it (and the scheme, when not public)."""
    if role == "public":
        return {"x-dateline-role": role}
    return {"x-dateline-role": role, "security": [{"bearer": []}]}


IDEMPOTENCY: dict[str, Any] = {
    "parameters": [
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "description": "a repeat with the same key and body gets the first answer",
            "schema": {"type": "string", "minLength": 1, "maxLength": 255},
        }
    ]
}
"""A write's ``Idempotency-Key`` header (CONTRACT "HTTP API"; else 400 ``bad_request``)."""
CONDITIONAL: dict[str, Any] = {
    "parameters": [
        {
            "name": "If-None-Match",
            "in": "header",
            "required": False,
            "description": "an ETag this client has: 304 while it is current",
            "schema": {"type": "string"},
        }
    ]
}
"""A public read's ``If-None-Match`` header (CONTRACT "ETag")."""
NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    "304": {"description": "not modified: the ETag given in If-None-Match is current"}
}
"""The conditional reads' 304 (no body)."""


def document(app: FastAPI) -> dict[str, Any]:
    """The document ``/openapi.json`` serves: FastAPI's, put right as the rules above say."""
    with warnings.catch_warnings():
        # FastAPI gives a GET-and-HEAD route one id for both, and says so; each is renamed below.
        warnings.filterwarnings("ignore", "Duplicate Operation ID", UserWarning)
        doc = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            description=app.description,
            routes=app.routes,
        )
    for path, operations in doc.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.get("responses", {})
            framework = responses.get("422", {}).get("content", {}).get(JSON, {}).get("schema", {})
            if framework.get("$ref", "").endswith("/HTTPValidationError"):
                del responses["422"]
            operation["operationId"] = f"{operation['operationId'].rsplit('_', 1)[0]}_{method}"
            if "x-dateline-role" not in operation:
                raise AssertionError(f"{method.upper()} {path} does not say who may call it")
    schemas = doc.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    for ref in _refs(doc):
        if ref.removeprefix("#/components/schemas/") not in schemas:
            raise AssertionError(f"/openapi.json refers to {ref}, which it does not define")
    doc.setdefault("components", {})["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer", "description": "a Dateline token"}
    }
    return doc


def _refs(value: object) -> Iterator[str]:
    """Every ``$ref`` in a JSON value."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str):
                yield ref
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def install(app: FastAPI) -> None:
    """Serve ``document(app)`` at ``/openapi.json``, built once, on first use."""
    built: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        if not built:
            built.update(document(app))
        return built

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override
