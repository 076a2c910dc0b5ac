"""Bad requests, one table: each gets the contract's JSON error and changes nothing.

Every case runs against its own freshly built stories (``Stories``): a live story at version 4
(opened; entry ``e1`` published with an Idempotency-Key; ``e2`` published, then retracted; nothing
pinned) and a closed story at version 2. After the bad request, the answer must be the contract's
``{"error": {"code", "message", "details"}}`` with the case's status and code, both stories' event
lists must be exactly what they were (same envelopes, same last hash), and a story a case tried to
open must not exist (CONTRACT.md "HTTP API", "Details that tests rely on: Errors, Edges").
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

LIMIT = 256 * 1024
"""The documented body limit (CONTRACT "Errors": bodies over 256 KiB are 413)."""
E1 = {"type": "entry.published", "data": {"entry_id": "e1", "body": "<p>One</p>"}}
"""The keyed request the setup makes; the idempotency cases reuse its key."""
NEW = {"type": "entry.published", "data": {"entry_id": "e3", "body": "<p>Three</p>"}}


def publish(body: Any, **data: Any) -> dict[str, Any]:
    """An ``entry.published`` request for a new entry ``e3`` with ``body``."""
    return {"type": "entry.published", "data": {"entry_id": "e3", "body": body, **data}}


def embed(kind: str, url: str, entry_id: str = "e1") -> dict[str, Any]:
    """An ``embed.attached`` request."""
    return {"type": "embed.attached", "data": {"entry_id": entry_id, "kind": kind, "url": url}}


def nested(levels: int) -> dict[str, Any]:
    """A request body nested ``levels`` deep (the body object itself is level 1)."""
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"x": value}
    return value


def refused(field_name: str) -> Callable[[Any], bool]:
    """A details check: the field named, and at least one thing refused in it."""
    return lambda d: d["field"] == field_name and len(d["refused"]) > 0


@dataclass(frozen=True)
class Case:
    """One bad request and the error it must get.

    ``path`` and string values in ``body`` may name ``{story}`` (the live story), ``{closed}``
    (the closed one), ``{fresh}`` (an id no story has) and ``{key}`` (the setup's Idempotency-Key).
    ``auth`` is ``admin``, ``editor``, ``auditor``, None (no header) or a raw Authorization value.
    ``raw`` is sent as the body byte for byte; otherwise ``body`` is sent as JSON; ``chunked``
    sends it without a Content-Length, so only the server's count of bytes read can stop it.
    """

    id: str
    status: int
    code: str
    body: Any = None
    raw: bytes | None = None
    path: str = "/stories/{story}/events"
    method: str = "POST"
    content_type: str | None = "application/json"
    auth: str | None = "admin"
    headers: dict[str, str] = field(default_factory=dict)
    details: Callable[[Any], bool] | None = None
    chunked: bool = False


CASES = [
    # -- the body as bytes: JSON, content type, size, nesting, NUL and surrogates --------------
    Case("invalid-json", 400, "bad_request", raw=b'{"type": "entry.published", "data": '),
    Case("empty-body", 400, "bad_request", raw=b""),
    Case("body-is-an-array", 400, "bad_request", raw=b'[{"type": "entry.published"}]'),
    Case("body-is-a-string", 400, "bad_request", raw=b'"entry.published"'),
    Case("trailing-garbage", 400, "bad_request", raw=json.dumps(NEW).encode() + b" x"),
    Case("nan-literal", 400, "bad_request", raw=b'{"type": "entry.published", "data": NaN}'),
    Case(
        "invalid-utf-8",
        400,
        "bad_request",
        raw=b'{"type": "entry.published", "data": {"entry_id": "e3", "body": "<p>\xff</p>"}}',
    ),
    Case(
        "lone-high-surrogate",
        400,
        "bad_request",
        raw=rb'{"type": "entry.published", "data": {"entry_id": "e3", "body": "<p>\ud800</p>"}}',
    ),
    Case(
        "lone-low-surrogate",
        400,
        "bad_request",
        raw=rb'{"type": "entry.published", "data": {"entry_id": "e3", "body": "<p>\udc00</p>"}}',
    ),
    Case(
        "raw-nul-byte-in-a-string",
        400,
        "bad_request",
        raw=b'{"type": "entry.published", "data": {"entry_id": "e3", "body": "<p>\x00</p>"}}',
    ),
    Case("escaped-nul-in-body", 422, "invalid_event", body=publish("<p>a\u0000b</p>")),
    Case(
        "bell-in-headline",
        422,
        "invalid_event",
        body=publish("<p>ok</p>", headline="Ring \u0007"),
    ),
    Case("nested-65-levels", 400, "bad_request", body={**NEW, "data": nested(64)}),
    Case("nested-far-too-deep", 400, "bad_request", raw=b'{"a":' * 2000 + b"1" + b"}" * 2000),
    Case(
        "over-256-kib",
        413,
        "payload_too_large",
        body=publish("<p>" + "a" * LIMIT + "</p>"),
        details=lambda d: d["limit"] == LIMIT,
    ),
    Case(
        "over-256-kib-chunked",
        413,
        "payload_too_large",
        body=publish("<p>" + "a" * LIMIT + "</p>"),
        chunked=True,
        details=lambda d: d["limit"] == LIMIT,
    ),
    Case(
        "over-256-kib-opening-a-story",
        413,
        "payload_too_large",
        path="/stories",
        body={"story": "{fresh}", "title": "Big", "summary": "a" * LIMIT},
        details=lambda d: d["limit"] == LIMIT,
    ),
    Case("text-plain", 415, "unsupported_media_type", content_type="text/plain", body=NEW),
    Case("no-content-type", 415, "unsupported_media_type", content_type=None, body=NEW),
    Case(
        "form-encoded",
        415,
        "unsupported_media_type",
        content_type="application/x-www-form-urlencoded",
        raw=b"type=entry.published&data=x",
    ),
    Case(
        "opening-a-story-as-text",
        415,
        "unsupported_media_type",
        path="/stories",
        content_type="text/plain",
        body={"story": "{fresh}", "title": "Plain"},
    ),
    # -- credentials and roles -----------------------------------------------------------------
    Case("no-token", 401, "unauthorized", auth=None, body=NEW),
    Case("unknown-token", 401, "unauthorized", auth="Bearer not-a-real-token", body=NEW),
    Case("basic-scheme", 401, "unauthorized", auth="Basic {admin}", body=NEW),
    Case("bearer-without-token", 401, "unauthorized", auth="Bearer", body=NEW),
    Case(
        "no-token-opening-a-story",
        401,
        "unauthorized",
        auth=None,
        path="/stories",
        body={"story": "{fresh}", "title": "Anon"},
    ),
    Case("auditor-publishing", 403, "forbidden", auth="auditor", body=NEW),
    Case(
        "auditor-opening-a-story",
        403,
        "forbidden",
        auth="auditor",
        path="/stories",
        body={"story": "{fresh}", "title": "Audited"},
    ),
    Case(
        "editor-creating-a-token",
        403,
        "forbidden",
        auth="editor",
        path="/tokens",
        body={"role": "admin"},
    ),
    # -- types, fields and ids -----------------------------------------------------------------
    Case("unknown-type", 422, "invalid_event", body={"type": "entry.deleted", "data": {}}),
    Case("type-not-a-string", 422, "invalid_event", body={"type": 42, "data": {}}),
    Case(
        "second-story-opened",
        422,
        "invalid_event",
        body={"type": "story.opened", "data": {"title": "Again"}},
    ),
    Case("missing-type", 422, "invalid_event", body={"data": NEW["data"]}),
    Case("missing-data", 422, "invalid_event", body={"type": "entry.published"}),
    Case("data-is-a-list", 422, "invalid_event", body={"type": "entry.published", "data": []}),
    Case(
        "missing-body",
        422,
        "invalid_event",
        body={"type": "entry.published", "data": {"entry_id": "e3"}},
    ),
    Case("body-is-a-number", 422, "invalid_event", body=publish(42)),
    Case("empty-body-text", 422, "invalid_event", body=publish("")),
    Case("key-event-is-a-string", 422, "invalid_event", body=publish("<p>x</p>", key_event="yes")),
    Case(
        "correction-without-note",
        422,
        "invalid_event",
        body={"type": "entry.corrected", "data": {"entry_id": "e1", "body": "<p>Fixed</p>"}},
    ),
    Case(
        "retraction-with-empty-note",
        422,
        "invalid_event",
        body={"type": "entry.retracted", "data": {"entry_id": "e1", "note": ""}},
    ),
    Case("unknown-data-field", 422, "invalid_event", body=publish("<p>x</p>", colour="red")),
    Case("actor-in-the-request", 422, "invalid_event", body={**NEW, "actor": "editor:mallory"}),
    Case("actor-in-data", 422, "invalid_event", body=publish("<p>x</p>", actor="editor:mallory")),
    Case("expected-version-a-string", 422, "invalid_event", body={**NEW, "expected_version": "4"}),
    Case("expected-version-negative", 422, "invalid_event", body={**NEW, "expected_version": -1}),
    Case(
        "story-update-with-nothing",
        422,
        "invalid_event",
        body={"type": "story.updated", "data": {}},
    ),
    Case(
        "entry-id-uppercase",
        422,
        "invalid_event",
        body={**NEW, "data": {**NEW["data"], "entry_id": "E3"}},
    ),
    Case(
        "entry-id-underscore",
        422,
        "invalid_event",
        body={**NEW, "data": {**NEW["data"], "entry_id": "e_3"}},
    ),
    Case(
        "entry-id-leading-dash",
        422,
        "invalid_event",
        body={**NEW, "data": {**NEW["data"], "entry_id": "-e3"}},
    ),
    Case(
        "entry-id-65-chars",
        422,
        "invalid_event",
        body={**NEW, "data": {**NEW["data"], "entry_id": "e" * 65}},
    ),
    Case(
        "story-id-uppercase",
        422,
        "invalid_event",
        path="/stories",
        body={"story": "Syria-Daily", "title": "Bad id"},
    ),
    Case("story-without-title", 422, "invalid_event", path="/stories", body={"story": "{fresh}"}),
    Case(
        "story-with-actor",
        422,
        "invalid_event",
        path="/stories",
        body={"story": "{fresh}", "title": "Mine", "actor": "admin:mallory"},
    ),
    Case(
        "story-path-not-an-id", 404, "unknown_story", path="/stories/Not_A_Story/events", body=NEW
    ),
    Case("story-never-opened", 404, "unknown_story", path="/stories/{fresh}/events", body=NEW),
    Case(
        "unknown-route",
        404,
        "not_found",
        path="/stories/{story}/nowhere",
        body=NEW,
    ),
    Case(
        "wrong-method",
        405,
        "method_not_allowed",
        method="PUT",
        path="/stories/{story}",
        body=NEW,
    ),
    # -- HTML outside the subset (CONTRACT "HTML subset": refused, never stripped) -------------
    Case(
        "html-script",
        422,
        "invalid_event",
        body=publish("<p>x</p><script>alert(1)</script>"),
        details=refused("body"),
    ),
    Case(
        "html-iframe",
        422,
        "invalid_event",
        body=publish('<iframe src="https://example.com"></iframe>'),
        details=refused("body"),
    ),
    Case(
        "html-img-onerror",
        422,
        "invalid_event",
        body=publish('<img src="x" onerror="alert(1)">'),
        details=refused("body"),
    ),
    Case(
        "html-p-onclick",
        422,
        "invalid_event",
        body=publish('<p onclick="alert(1)">Tap</p>'),
        details=refused("body"),
    ),
    Case(
        "html-javascript-link",
        422,
        "invalid_event",
        body=publish('<p><a href="javascript:alert(1)">x</a></p>'),
        details=refused("body"),
    ),
    Case(
        "html-entity-javascript-link",
        422,
        "invalid_event",
        body=publish('<p><a href="&#106;avascript&#58;alert(1)">x</a></p>'),
        details=refused("body"),
    ),
    Case(
        "html-split-javascript-link",
        422,
        "invalid_event",
        body=publish('<p><a href="java\tscript:alert(1)">x</a></p>'),
        details=refused("body"),
    ),
    Case(
        "html-style-tag",
        422,
        "invalid_event",
        body=publish("<style>p{color:red}</style><p>x</p>"),
        details=refused("body"),
    ),
    Case(
        "html-comment",
        422,
        "invalid_event",
        body=publish("<p>x</p><!-- x -->"),
        details=refused("body"),
    ),
    Case(
        "html-style-attribute",
        422,
        "invalid_event",
        body=publish('<p style="color:red">x</p>'),
        details=refused("body"),
    ),
    Case(
        "html-svg",
        422,
        "invalid_event",
        body=publish('<svg onload="alert(1)"></svg>'),
        details=refused("body"),
    ),
    Case(
        "html-http-link",
        422,
        "invalid_event",
        body=publish('<p><a href="http://example.com">x</a></p>'),
        details=refused("body"),
    ),
    Case(
        "html-data-link",
        422,
        "invalid_event",
        body=publish('<p><a href="data:text/html,hi">x</a></p>'),
        details=refused("body"),
    ),
    Case(
        "html-in-a-correction",
        422,
        "invalid_event",
        body={
            "type": "entry.corrected",
            "data": {"entry_id": "e1", "body": "<p>x</p><script>1</script>", "note": "Fixed"},
        },
        details=refused("body"),
    ),
    # -- embeds (CONTRACT "Embeds": https only, allow-listed providers) -----------------------
    Case(
        "embed-http-image",
        422,
        "invalid_event",
        body=embed("image", "http://example.com/a.jpg"),
        details=refused("url"),
    ),
    Case(
        "embed-javascript-link",
        422,
        "invalid_event",
        body=embed("link", "javascript:alert(1)"),
        details=refused("url"),
    ),
    Case(
        "embed-video-not-listed",
        422,
        "invalid_event",
        body=embed("video", "https://videos.example.com/v/1"),
        details=refused("url"),
    ),
    Case(
        "embed-social-not-listed",
        422,
        "invalid_event",
        body=embed("social", "https://mastodon.example/@a/1"),
        details=refused("url"),
    ),
    Case(
        "embed-map-not-listed",
        422,
        "invalid_event",
        body=embed("map", "https://maps.example.com/x"),
        details=refused("url"),
    ),
    Case(
        "embed-lookalike-host",
        422,
        "invalid_event",
        body=embed("video", "https://youtube.com.evil.example/watch?v=1"),
        details=refused("url"),
    ),
    Case(
        "embed-userinfo",
        422,
        "invalid_event",
        body=embed("video", "https://user@youtube.com/watch?v=1"),
        details=refused("url"),
    ),
    Case(
        "embed-explicit-port",
        422,
        "invalid_event",
        body=embed("image", "https://example.com:443/a.jpg"),
        details=refused("url"),
    ),
    Case(
        "embed-unknown-kind", 422, "invalid_event", body=embed("audio", "https://example.com/a.mp3")
    ),
    # -- the story's state: versions, retracted entries, missing things, closed stories -------
    Case(
        "stale-expected-version",
        409,
        "version_conflict",
        body={**NEW, "expected_version": 1},
        details=lambda d: d["current_version"] == 4,
    ),
    Case(
        "future-expected-version",
        409,
        "version_conflict",
        body={**NEW, "expected_version": 99},
        details=lambda d: d["current_version"] == 4,
    ),
    Case(
        "correcting-a-retracted-entry",
        409,
        "invalid_state",
        body={
            "type": "entry.corrected",
            "data": {"entry_id": "e2", "body": "<p>x</p>", "note": "n"},
        },
    ),
    Case(
        "editing-a-retracted-entry",
        409,
        "invalid_state",
        body={"type": "entry.edited", "data": {"entry_id": "e2", "body": "<p>x</p>"}},
    ),
    Case(
        "retracting-twice",
        409,
        "invalid_state",
        body={"type": "entry.retracted", "data": {"entry_id": "e2", "note": "Again"}},
    ),
    Case(
        "pinning-a-retracted-entry",
        409,
        "invalid_state",
        body={"type": "entry.pinned", "data": {"entry_id": "e2"}},
    ),
    Case(
        "embedding-on-a-retracted-entry",
        409,
        "invalid_state",
        body=embed("image", "https://example.com/a.jpg", entry_id="e2"),
    ),
    Case(
        "unpinning-when-nothing-is-pinned",
        409,
        "invalid_state",
        body={"type": "entry.unpinned", "data": {"entry_id": "e1"}},
    ),
    Case(
        "pinning-a-missing-entry",
        404,
        "unknown_entry",
        body={"type": "entry.pinned", "data": {"entry_id": "nope"}},
    ),
    Case(
        "correcting-a-missing-entry",
        404,
        "unknown_entry",
        body={
            "type": "entry.corrected",
            "data": {"entry_id": "nope", "body": "<p>x</p>", "note": "n"},
        },
    ),
    Case(
        "removing-a-missing-embed",
        404,
        "unknown_embed",
        body={"type": "embed.removed", "data": {"entry_id": "e1", "embed_id": "nope"}},
    ),
    Case(
        "duplicate-entry-id",
        409,
        "entry_exists",
        body={**NEW, "data": {**NEW["data"], "entry_id": "e1"}},
    ),
    Case(
        "publishing-to-a-closed-story",
        409,
        "story_closed",
        path="/stories/{closed}/events",
        body=NEW,
    ),
    Case(
        "closing-a-closed-story",
        409,
        "story_closed",
        path="/stories/{closed}/events",
        body={"type": "story.closed", "data": {}},
    ),
    Case(
        "reopening-a-story",
        409,
        "story_exists",
        path="/stories",
        body={"story": "{story}", "title": "Again"},
    ),
    # -- Idempotency-Key (CONTRACT "Idempotency identity") -------------------------------------
    Case(
        "key-reused-with-another-body",
        422,
        "idempotency_key_reused",
        headers={"Idempotency-Key": "{key}"},
        body=NEW,
    ),
    Case(
        "key-reused-on-another-story",
        422,
        "idempotency_key_reused",
        headers={"Idempotency-Key": "{key}"},
        path="/stories/{closed}/events",
        body=E1,
    ),
    Case(
        "key-reused-opening-a-story",
        422,
        "idempotency_key_reused",
        headers={"Idempotency-Key": "{key}"},
        path="/stories",
        body={"story": "{fresh}", "title": "Keyed"},
    ),
    Case(
        "key-too-long",
        400,
        "bad_request",
        headers={"Idempotency-Key": "k" * 256},
        body=NEW,
    ),
]


@dataclass
class Stories:
    """The stories one case runs against, and the setup's Idempotency-Key."""

    story: str
    closed: str
    fresh: str
    key: str

    def fill(self, value: Any) -> Any:
        """``value`` with every placeholder replaced, in strings inside any JSON value."""
        if isinstance(value, str):
            for name in ("story", "closed", "fresh", "key"):
                value = value.replace("{" + name + "}", getattr(self, name))
            return value
        if isinstance(value, dict):
            return {k: self.fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.fill(v) for v in value]
        return value


async def created(http: httpx.AsyncClient, path: str, body: Any, **headers: str) -> None:
    r = await http.post(path, json=body, headers=headers)
    assert r.status_code == 201, r.text


@pytest.fixture
async def stories(http: httpx.AsyncClient, story_id: str) -> Stories:
    """A live story at version 4 (``e1``; ``e2`` retracted; no pin) and a closed story."""
    s = Stories(story_id, f"{story_id}-closed", f"{story_id}-fresh", f"key-{story_id}")
    await created(http, "/stories", {"story": s.story, "title": "Bad requests"})
    await created(http, f"/stories/{s.story}/events", E1, **{"Idempotency-Key": s.key})
    await created(
        http,
        f"/stories/{s.story}/events",
        {"type": "entry.published", "data": {"entry_id": "e2", "body": "<p>Two</p>"}},
    )
    await created(
        http,
        f"/stories/{s.story}/events",
        {"type": "entry.retracted", "data": {"entry_id": "e2", "note": "Wrong"}},
    )
    await created(http, "/stories", {"story": s.closed, "title": "Closed"})
    await created(http, f"/stories/{s.closed}/events", {"type": "story.closed", "data": {}})
    return s


@pytest.fixture
async def anonymous(api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client with no default credentials: each case sends its own."""
    async with httpx.AsyncClient(base_url=api_url, timeout=15.0) as c:
        yield c


async def history(http: httpx.AsyncClient, story: str) -> list[dict[str, Any]]:
    """Every envelope of ``story``, read as the admin."""
    r = await http.get(f"/stories/{story}/events")
    assert r.status_code == 200, r.text
    events: list[dict[str, Any]] = r.json()["events"]
    return events


async def chunks(content: bytes, size: int = 16_384) -> AsyncIterator[bytes]:
    """``content`` as a chunked upload (no Content-Length)."""
    for start in range(0, len(content), size):
        yield content[start : start + size]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
async def test_a_bad_request_gets_its_error_and_appends_nothing(
    case: Case,
    stories: Stories,
    http: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    editor_token: str,
    auditor_token: str,
) -> None:
    """The contract's JSON error with its 4xx status and code; no story's history changes."""
    before = {s: await history(http, s) for s in (stories.story, stories.closed)}
    assert [len(e) for e in before.values()] == [4, 2]

    admin = http.headers["authorization"].removeprefix("Bearer ")
    tokens = {"admin": admin, "editor": editor_token, "auditor": auditor_token}
    headers = {k: stories.fill(v) for k, v in case.headers.items()}
    if case.auth is not None:
        headers["Authorization"] = (
            f"Bearer {tokens[case.auth]}" if case.auth in tokens else case.auth
        ).replace("{admin}", admin)
    if case.content_type is not None:
        headers["Content-Type"] = case.content_type
    content = case.raw if case.raw is not None else json.dumps(stories.fill(case.body)).encode()
    r = await anonymous.request(
        case.method,
        stories.fill(case.path),
        content=chunks(content) if case.chunked else content,
        headers=headers,
    )

    assert r.status_code == case.status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == case.code
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    if case.details is not None:
        assert case.details(body["error"]["details"]), body["error"]["details"]

    after = {s: await history(http, s) for s in before}
    assert after == before
    for s, events in after.items():
        assert events[-1]["hash"] == before[s][-1]["hash"]
    r = await http.get(f"/stories/{stories.fresh}/events")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "unknown_story"
