"""The HTTP API (CONTRACT.md "HTTP API"), FastAPI on uvicorn.

The write path is kept lean on purpose (docs/architecture.md, "Hot path"): a handler reads the raw
body with a size cap, parses it with orjson, validates only the event's ``data`` with its pydantic
command model, and answers with the envelope's stored JSON bytes, never re-serialized. Every
``DatelineError`` becomes the contract's ``{"error": {...}}`` with its status.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as redis
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from events.decide import parse_command, parse_open
from events.errors import (
    BadRequest,
    DatelineError,
    Forbidden,
    IdempotencyKeyReused,
    InvalidEvent,
    InvalidRequest,
    PayloadTooLarge,
    Unauthorized,
    UnknownEntry,
    UnknownStory,
    UnsupportedMediaType,
)
from events.ids import is_id
from projections.story import DEFAULT_LIMIT, MAX_LIMIT
from services.audit.replay import Audit
from services.reader import page as reader
from services.settings import Settings
from services.store import keys
from services.store.connection import connect, reachable
from services.store.readmodel import ReadModel
from services.store.record import Keyed, Store
from services.store.tokens import Principal, Role, Tokens

log = logging.getLogger("dateline.api")

MAX_DEPTH = 64
"""Deepest JSON nesting accepted (CONTRACT "Edges"); deeper is 400 ``bad_request``."""
EVENTS_LIMIT, EVENTS_MAX = 1000, 10_000
QUERY_CEILING = 10**18
"""Integer query parameters larger than this are read as this (no story gets that long)."""
JSON = "application/json"


@dataclass
class Services:
    """What the handlers use, built once per process."""

    client: redis.Redis
    store: Store
    tokens: Tokens
    reads: ReadModel
    audit: Audit
    settings: Settings
    registry: CollectorRegistry
    appends: Counter
    refusals: Counter
    lag: Gauge
    pending: Gauge
    bypassed: Gauge

    @classmethod
    def connect(cls, settings: Settings, url: str) -> Services:
        client = connect(url)
        registry = CollectorRegistry()
        store, reads = Store(client), ReadModel(client)
        return cls(
            client=client,
            store=store,
            tokens=Tokens(client, settings.admin_token),
            reads=reads,
            audit=Audit(client, store, reads),
            settings=settings,
            registry=registry,
            appends=Counter(
                "dateline_appends", "Events appended, by type", ["type"], registry=registry
            ),
            refusals=Counter(
                "dateline_refusals", "Requests refused, by error code", ["code"], registry=registry
            ),
            lag=Gauge(
                "dateline_projector_lag",
                "Events on the feeds not yet delivered to the projectors",
                registry=registry,
            ),
            pending=Gauge(
                "dateline_projector_pending",
                "Events delivered to a projector and not yet acknowledged",
                registry=registry,
            ),
            bypassed=Gauge(
                "dateline_checkpoints_bypassed",
                "Replay checkpoints found damaged or stale and passed by (this process)",
                registry=registry,
            ),
        )


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers, media_type=JSON)


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


EVENTS_PATH = re.compile(r"/stories/([^/]+)/events")


def front(api: FastAPI) -> ASGIApp:
    """The ASGI app uvicorn serves: ``POST /stories/{story}/events`` straight to its handler,
    everything else through FastAPI.

    The write path is the API's hot path; FastAPI's own middlewares (telemetry, body limit, exit
    stack) and its dependency solving cost more per request than the rest of the handler
    (bench/README.md, "HTTP append"). The route stays declared in FastAPI for /openapi.json and
    answers exactly the same; only the dispatch is shorter.
    """
    direct = api.state.post_event_direct

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            match = EVENTS_PATH.fullmatch(scope["path"])
            if match is not None:
                scope["app"] = api
                response = await direct(Request(scope, receive), match.group(1))
                await response(scope, receive, send)
                return
        await api(scope, receive, send)

    return app


def create_app(settings: Settings, url: str) -> FastAPI:
    """The API app, connected to the store at ``url``."""

    services = Services.connect(settings, url)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services.tokens.start()
        try:
            yield
        finally:
            await services.tokens.stop()
            await services.client.aclose()

    app = FastAPI(
        title="Dateline",
        version="0.1.0",
        summary="Event-sourced live blogs: hash-chained history, live state, audit.",
        lifespan=lifespan,
    )
    app.state.services = services

    @app.exception_handler(RequestValidationError)
    async def malformed(request: Request, error: RequestValidationError) -> Response:
        return await refused(request, BadRequest("malformed request", {"errors": str(error)}))

    @app.exception_handler(HTTPException)
    async def unrouted(request: Request, error: HTTPException) -> Response:
        """Starlette's own refusals (no such route, wrong method) in the contract's error shape."""
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "bad_request")
        services.refusals.labels(code).inc()
        body = {"error": {"code": code, "message": str(error.detail), "details": None}}
        return json_response(body, error.status_code, error.headers)

    @app.exception_handler(Exception)
    async def bug(request: Request, error: Exception) -> Response:
        """Anything that is not a DatelineError is a bug: the contract's JSON, status 500."""
        services.refusals.labels("internal").inc()
        body = {"error": {"code": "internal", "message": "internal error", "details": None}}
        return json_response(body, 500)

    @app.exception_handler(DatelineError)
    async def refused(request: Request, error: DatelineError) -> Response:
        services.refusals.labels(error.code).inc()
        headers = {"Retry-After": "1"} if error.status == 429 else None
        return json_response(error.to_body(), error.status, headers)

    async def principal(request: Request, role: Role) -> Principal:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("an Authorization: Bearer <token> header is required")
        who = await services.tokens.resolve(token.strip())
        if who is None:
            raise Unauthorized("unknown or revoked token")
        if not who.may(role):
            raise Forbidden(f"this needs an {role} token; an {who.role} token cannot do it")
        return who

    def keyed(request: Request, who: Principal, body: Any) -> Keyed | None:
        key = request.headers.get("idempotency-key")
        if key is None:
            return None
        if not key or len(key) > 255:
            raise BadRequest("Idempotency-Key must be 1 to 255 characters")
        return Keyed.of(who.token_hash, key, request.method, request.url.path, body)

    async def append(
        request: Request, story: str, command: Any, who: Principal, body: Any, expected: Any = None
    ) -> Response:
        k = keyed(request, who, body)
        try:
            done = await services.store.append(
                story, command, actor=who.actor, expected_version=expected, keyed=k
            )
        except IdempotencyKeyReused:
            raise  # the claim belongs to the key's first request: keep it
        except DatelineError:
            if k is not None:
                await services.store.release(k)
            raise
        if done.envelope is not None:
            services.appends.labels(done.envelope.type).inc()
        return Response(done.body, 201, media_type=JSON)

    write_body = {
        "requestBody": {
            "required": True,
            "content": {JSON: {"schema": {"type": "object"}}},
        }
    }

    @app.post("/stories", status_code=201, openapi_extra=write_body, tags=["write"])
    async def open_story(request: Request) -> Response:
        """Open a story: appends ``story.opened`` as version 1 (editor or admin)."""
        who = await principal(request, "editor")
        body = await json_body(request, settings.max_body)
        command = parse_open(body)
        return await append(request, command.story, command, who, body)

    @app.post("/stories/{story}/events", status_code=201, openapi_extra=write_body, tags=["write"])
    async def post_event(story: str, request: Request) -> Response:
        """Decide and append one event: ``{type, data, expected_version?}`` (editor or admin)."""
        who = await principal(request, "editor")
        known_story(story)
        body = await json_body(request, settings.max_body)
        extra = set(body) - {"type", "data", "expected_version"}
        if extra:
            raise InvalidEvent(
                f"unknown fields: {', '.join(sorted(extra))}", {"fields": sorted(extra)}
            )
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
        """The write route without the framework: errors answered as the handlers would."""
        try:
            return await post_event(story, request)
        except DatelineError as error:
            return await refused(request, error)
        except Exception:  # a bug, answered like any other: the contract's JSON 500
            log.exception("POST %s failed", request.url.path)
            return await bug(request, RuntimeError())

    app.state.post_event_direct = post_event_direct

    @app.get("/stories", tags=["read"])
    async def list_stories(request: Request) -> Response:
        """Stories, newest activity first."""
        limit = query_int(request, "limit", 1000, 1, 1000) or 1000
        return json_response({"stories": await services.reads.stories(limit)})

    @app.get("/stories/{story}", tags=["read"])
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
            await services.reads.wait_for(story, wanted)
        state = await services.reads.story(story, size, cursor)
        etag = f'"{state["version"]}"'
        tags = {
            t.strip().removeprefix("W/")
            for t in request.headers.get("if-none-match", "").split(",")
        }
        if etag in tags or "*" in tags:  # If-None-Match compares weakly (RFC 9110, 13.1.2)
            return Response(status_code=304, headers={"ETag": etag})
        return json_response(state, headers={"ETag": etag})

    @app.get("/stories/{story}/events", tags=["audit"])
    async def get_events(
        story: str,
        request: Request,
        from_version: str | None = None,
        to_version: str | None = None,
        limit: str | None = None,
    ) -> Response:
        """The story's envelopes in version order (auditor or admin)."""
        await principal(request, "auditor")
        known_story(story)
        start = query_int(request, "from_version", 1, 1) or 1
        end = query_int(request, "to_version", None, 1)
        size = query_int(request, "limit", EVENTS_LIMIT, 1, EVENTS_MAX) or EVENTS_LIMIT
        head, _ = await services.store.head(story)
        if head == 0:
            raise UnknownStory(f"story {story!r} does not exist")
        rows = await services.store.read_raw(story, start, end, size)
        last = min(head, end) if end else head
        following = rows[-1][0] + 1 if rows and rows[-1][0] < last else None
        body = b'{"events":[' + b",".join(raw for _, raw in rows) + b'],"next_from_version":'
        body += orjson.dumps(following) + b"}"
        return Response(body, media_type=JSON)

    @app.get("/stories/{story}/replay", tags=["audit"], response_model=None)
    async def get_replay(
        story: str,
        request: Request,
        version: str | None = None,
        at: str | None = None,
        limit: str | None = None,
        before: str | None = None,
        format: str | None = None,
    ) -> Response:
        """The story as it stood at ``version`` or at the moment ``at`` (auditor or admin).

        ``format=html`` gives the reader page frozen as it stood then, with no live script.
        """
        await principal(request, "auditor")
        known_story(story)
        wanted = query_int(request, "version", None, 1)
        moment = request.query_params.get("at")
        if (wanted is None) == (moment is None):
            raise BadRequest(
                "give exactly one of version and at", {"parameters": ["version", "at"]}
            )
        size = query_int(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT) or DEFAULT_LIMIT
        cursor = query_int(request, "before", None, 1)
        shape = request.query_params.get("format", "json")
        if shape not in ("json", "html"):
            raise BadRequest("format is json or html", {"parameter": "format"})
        if moment is not None:
            wanted, moment = await services.audit.version_at(story, moment)
        assert wanted is not None
        state = await services.audit.replay(story, wanted, size, cursor)
        if shape == "html":
            return await reader.frozen_page(services.store, request, state, moment)
        return json_response(state)

    @app.get("/stories/{story}/entries/{entry}/revisions", tags=["audit"])
    async def get_revisions(story: str, entry: str, request: Request) -> Response:
        """Every body the entry has had, with who, when, the note and a diff (auditor or admin)."""
        await principal(request, "auditor")
        known_story(story)
        if not is_id(entry):
            raise UnknownEntry(f"entry {entry!r} does not exist in story {story!r}")
        return json_response(await services.audit.revisions(story, entry))

    @app.get("/stories/{story}/verify", tags=["audit"])
    async def get_verify(story: str, request: Request) -> Response:
        """Re-walk the hash chain from the record alone (auditor or admin)."""
        await principal(request, "auditor")
        known_story(story)
        result = await services.audit.verify(story)
        return json_response(
            {
                "ok": result.ok,
                "events": result.events,
                "head_hash": result.head_hash,
                "first_bad_version": result.first_bad_version,
            }
        )

    @app.post("/tokens", status_code=201, tags=["admin"])
    async def create_token(request: Request) -> Response:
        """Create a token ``{role, name?}`` (admin); the token is shown only in this answer."""
        await principal(request, "admin")
        body = await json_body(request, settings.max_body)
        role, name = body.get("role"), body.get("name")
        if not isinstance(role, str):
            raise InvalidRequest("role must be one of editor, auditor, admin", {"field": "role"})
        if name is not None and not isinstance(name, str):
            raise InvalidRequest("name must be a string", {"field": "name"})
        token, who = await services.tokens.create(role, name)
        return json_response({"token": token, "role": who.role, "name": who.name}, 201)

    @app.delete("/tokens/{name}", status_code=204, tags=["admin"])
    async def delete_token(name: str, request: Request) -> Response:
        """Revoke a token at once, on every server (admin)."""
        await principal(request, "admin")
        await services.tokens.revoke(name)
        return Response(status_code=204)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> Response:
        """Liveness, with the store's reachability: 503 when it cannot be reached."""
        try:
            await services.store.ping()
        except DatelineError as error:
            return json_response(error.to_body(), error.status)
        return json_response({"ok": True, "store": "reachable"})

    @app.get("/metrics", tags=["ops"])
    async def metrics() -> Response:
        """Prometheus text: appends, refusals by code, projector lag and pending events."""
        lag = pending = 0
        with contextlib.suppress(DatelineError), reachable():
            async with services.client.pipeline(transaction=False) as pipe:
                for p in range(keys.PARTITIONS):
                    pipe.xinfo_groups(keys.feed(p))
                for groups in await pipe.execute(raise_on_error=False):
                    for g in groups if isinstance(groups, list) else []:
                        if g["name"] == keys.GROUP.encode():
                            lag += int(g.get("lag") or 0)
                            pending += int(g.get("pending") or 0)
        services.lag.set(lag)
        services.pending.set(pending)
        services.bypassed.set(services.audit.bypassed)
        return Response(generate_latest(services.registry), media_type=CONTENT_TYPE_LATEST)

    app.include_router(reader.router(services.settings, services.store, services.reads))
    return app
