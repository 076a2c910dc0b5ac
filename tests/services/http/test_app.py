"""The HTTP API as a newsroom tool sees it, on the real running server (CONTRACT.md "HTTP API")."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest

HEX64 = re.compile(r"^[0-9a-f]{64}$")
ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
LIMIT = 256 * 1024
ENVELOPE_FIELDS = {
    "id",
    "story",
    "version",
    "type",
    "data",
    "data_hash",
    "actor",
    "recorded_at",
    "idempotency_key",
    "prev_hash",
    "hash",
}


def canonical(value: Any) -> bytes:
    """The contract's canonical JSON, written out here independently of the server's."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def error_code(r: httpx.Response) -> str:
    code: str = r.json()["error"]["code"]
    return code


async def open_story(http: httpx.AsyncClient, story: str, title: str = "A story") -> None:
    r = await http.post("/stories", json={"story": story, "title": title})
    assert r.status_code == 201, r.text


async def publish(
    http: httpx.AsyncClient, story: str, body: str = "<p>News</p>", **data: Any
) -> dict[str, Any]:
    """Publish an entry; the 201 envelope."""
    r = await http.post(
        f"/stories/{story}/events",
        json={"type": "entry.published", "data": {"body": body, **data}},
    )
    assert r.status_code == 201, r.text
    envelope: dict[str, Any] = r.json()
    return envelope


async def events(http: httpx.AsyncClient, story: str) -> list[dict[str, Any]]:
    """The story's whole history, as the admin reads it."""
    r = await http.get(f"/stories/{story}/events")
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()["events"]
    return found


async def state(http: httpx.AsyncClient, story: str, version: int, **params: Any) -> Any:
    """The story's state once the projection has reached ``version``."""
    r = await http.get(f"/stories/{story}", params={"min_version": version, **params})
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture
async def anonymous(api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client without credentials."""
    async with httpx.AsyncClient(base_url=api_url, timeout=15.0) as c:
        yield c


@pytest.fixture
async def editor(api_url: str, editor_token: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client with the session's editor token."""
    headers = {"Authorization": f"Bearer {editor_token}"}
    async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=15.0) as c:
        yield c


# -- writing ------------------------------------------------------------------------------------


async def test_opening_a_story_answers_201_with_its_first_envelope(
    http: httpx.AsyncClient, story_id: str
) -> None:
    """The 201 is the sealed story.opened envelope: version 1 on 64 zeros, the admin's actor."""
    r = await http.post("/stories", json={"story": story_id, "title": "Opening", "summary": "S"})
    assert r.status_code == 201, r.text
    e = r.json()
    assert set(e) == ENVELOPE_FIELDS
    assert e["story"] == story_id
    assert e["version"] == 1
    assert e["type"] == "story.opened"
    assert e["data"] == {"title": "Opening", "summary": "S"}
    assert e["prev_hash"] == "0" * 64
    assert e["actor"] == "admin:bootstrap"
    assert e["idempotency_key"] is None
    assert e["recorded_at"].endswith("Z")
    datetime.fromisoformat(e["recorded_at"])
    assert HEX64.match(e["data_hash"])
    assert HEX64.match(e["hash"])
    assert e["data_hash"] == hashlib.sha256(canonical(e["data"])).hexdigest()
    sealed = {k: v for k, v in e.items() if k not in {"hash", "data"}}
    expected = hashlib.sha256(e["prev_hash"].encode() + canonical(sealed)).hexdigest()
    assert e["hash"] == expected


async def test_the_actor_comes_from_the_token_that_wrote(
    http: httpx.AsyncClient, api_url: str, story_id: str
) -> None:
    """An editor token named desk-x writes envelopes whose actor is editor:desk-x."""
    await http.delete("/tokens/desk-x")  # a store kept from an earlier run may hold it
    r = await http.post("/tokens", json={"role": "editor", "name": "desk-x"})
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "desk-x"
    assert r.json()["role"] == "editor"
    headers = {"Authorization": f"Bearer {r.json()['token']}"}
    async with httpx.AsyncClient(base_url=api_url, headers=headers) as desk:
        r = await desk.post("/stories", json={"story": story_id, "title": "Desk"})
        assert r.status_code == 201, r.text
        assert r.json()["actor"] == "editor:desk-x"
        r = await desk.post(
            f"/stories/{story_id}/events",
            json={"type": "entry.published", "data": {"body": "<p>From the desk</p>"}},
        )
        assert r.status_code == 201, r.text
        assert r.json()["actor"] == "editor:desk-x"
    assert (await http.delete("/tokens/desk-x")).status_code == 204


async def test_an_actor_in_the_body_is_refused(http: httpx.AsyncClient, story_id: str) -> None:
    """A request naming its own actor is invalid_event, on opening and on any event."""
    r = await http.post(
        "/stories", json={"story": story_id, "title": "Mine", "actor": "editor:mallory"}
    )
    assert r.status_code == 422
    assert error_code(r) == "invalid_event"
    assert (await http.get(f"/stories/{story_id}/events")).status_code == 404
    await open_story(http, story_id)
    r = await http.post(
        f"/stories/{story_id}/events",
        json={"type": "entry.published", "data": {"body": "<p>x</p>"}, "actor": "admin:x"},
    )
    assert r.status_code == 422
    assert error_code(r) == "invalid_event"
    assert len(await events(http, story_id)) == 1


async def test_reopening_a_story_is_story_exists(http: httpx.AsyncClient, story_id: str) -> None:
    """A second POST /stories for the same id is 409 story_exists and appends nothing."""
    await open_story(http, story_id)
    r = await http.post("/stories", json={"story": story_id, "title": "Again"})
    assert r.status_code == 409
    assert error_code(r) == "story_exists"
    assert len(await events(http, story_id)) == 1


async def test_a_server_assigned_entry_id_is_in_the_event_data(
    http: httpx.AsyncClient, story_id: str
) -> None:
    """An entry published without an id gets one, stored in data and shown on the page."""
    await open_story(http, story_id)
    e = await publish(http, story_id)
    entry_id = e["data"]["entry_id"]
    assert ID.match(entry_id)
    page = await state(http, story_id, e["version"])
    assert [x["entry_id"] for x in page["entries"]] == [entry_id]


async def test_a_json_content_type_with_a_charset_is_accepted(
    http: httpx.AsyncClient, story_id: str
) -> None:
    """application/json; charset=utf-8 is JSON: the write lands."""
    r = await http.post(
        "/stories",
        content=canonical({"story": story_id, "title": "Charset"}),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert r.status_code == 201, r.text


async def test_a_body_of_exactly_256_kib_is_accepted_and_one_byte_more_is_413(
    http: httpx.AsyncClient, story_id: str
) -> None:
    """The documented limit is inclusive: 262144 bytes pass, 262145 are payload_too_large."""
    await open_story(http, story_id)
    request = canonical({"type": "entry.published", "data": {"body": "<p>Padded</p>"}})
    exact = request[:-1] + b" " * (LIMIT - len(request)) + b"}"
    assert len(exact) == LIMIT
    headers = {"Content-Type": "application/json"}
    over = exact[:-1] + b" }"
    r = await http.post(f"/stories/{story_id}/events", content=over, headers=headers)
    assert r.status_code == 413
    assert error_code(r) == "payload_too_large"
    assert r.json()["error"]["details"] == {"limit": LIMIT}
    r = await http.post(f"/stories/{story_id}/events", content=exact, headers=headers)
    assert r.status_code == 201, r.text
    assert r.json()["version"] == 2


async def test_64_levels_of_nesting_reach_the_schema_and_65_do_not(
    http: httpx.AsyncClient, story_id: str
) -> None:
    """At 64 levels the body is parsed (the schema refuses the stray field); at 65 it is 400."""
    await open_story(http, story_id)

    def deep(levels: int) -> dict[str, Any]:
        inner: dict[str, Any] = {}
        for _ in range(levels - 2):  # the body object and data are the first two levels
            inner = {"x": inner}
        return {"type": "entry.published", "data": inner}

    r = await http.post(f"/stories/{story_id}/events", json=deep(64))
    assert r.status_code == 422
    assert error_code(r) == "invalid_event"
    r = await http.post(f"/stories/{story_id}/events", json=deep(65))
    assert r.status_code == 400
    assert error_code(r) == "bad_request"
    assert len(await events(http, story_id)) == 1


# -- Idempotency-Key ----------------------------------------------------------------------------


async def test_a_repeated_keyed_request_returns_the_first_answer_and_appends_nothing(
    http: httpx.AsyncClient, story_id: str
) -> None:
    """Same key, same body: the identical 201 body again, on both POSTs, and no new event."""
    key = {"Idempotency-Key": f"open-{story_id}"}
    opened = await http.post("/stories", json={"story": story_id, "title": "K"}, headers=key)
    assert opened.status_code == 201, opened.text
    again = await http.post("/stories", json={"title": "K", "story": story_id}, headers=key)
    assert again.status_code == 201, again.text
    assert again.content == opened.content

    key = {"Idempotency-Key": f"pub-{story_id}"}
    request = {"type": "entry.published", "data": {"body": "<p>Once</p>"}}
    first = await http.post(f"/stories/{story_id}/events", json=request, headers=key)
    assert first.status_code == 201, first.text
    assert first.json()["idempotency_key"] == f"pub-{story_id}"
    for _ in range(3):
        repeat = await http.post(f"/stories/{story_id}/events", json=request, headers=key)
        assert repeat.status_code == 201
        assert repeat.content == first.content
    assert [e["version"] for e in await events(http, story_id)] == [1, 2]


async def test_the_same_key_with_another_body_is_refused(
    http: httpx.AsyncClient, story_id: str
) -> None:
    """Same key, other body: 422 idempotency_key_reused, nothing appended."""
    await open_story(http, story_id)
    key = {"Idempotency-Key": f"k-{story_id}"}
    first = {"type": "entry.published", "data": {"body": "<p>One</p>"}}
    other = {"type": "entry.published", "data": {"body": "<p>Two</p>"}}
    r = await http.post(f"/stories/{story_id}/events", json=first, headers=key)
    assert r.status_code == 201, r.text
    r = await http.post(f"/stories/{story_id}/events", json=other, headers=key)
    assert r.status_code == 422
    assert error_code(r) == "idempotency_key_reused"
    assert len(await events(http, story_id)) == 2


async def test_the_same_key_on_another_story_is_refused_every_time(
    http: httpx.AsyncClient, story_id: str
) -> None:
    """A key used on one story is refused on another, again and again; that story stays put."""
    other = f"{story_id}-b"
    await open_story(http, story_id)
    await open_story(http, other)
    key = {"Idempotency-Key": f"k-{story_id}"}
    request = {"type": "entry.published", "data": {"body": "<p>One</p>"}}
    r = await http.post(f"/stories/{story_id}/events", json=request, headers=key)
    assert r.status_code == 201, r.text
    for _ in range(3):
        r = await http.post(f"/stories/{other}/events", json=request, headers=key)
        assert r.status_code == 422
        assert error_code(r) == "idempotency_key_reused"
    assert len(await events(http, other)) == 1
    r = await http.post(f"/stories/{story_id}/events", json=request, headers=key)
    assert r.status_code == 201
    assert r.json()["version"] == 2


async def test_an_idempotency_key_belongs_to_its_token(
    http: httpx.AsyncClient, editor: httpx.AsyncClient, story_id: str
) -> None:
    """Another token sending the same key and body appends its own event."""
    await open_story(http, story_id)
    key = {"Idempotency-Key": f"k-{story_id}"}
    request = {"type": "entry.published", "data": {"body": "<p>Shared key</p>"}}
    mine = await http.post(f"/stories/{story_id}/events", json=request, headers=key)
    theirs = await editor.post(f"/stories/{story_id}/events", json=request, headers=key)
    assert mine.status_code == 201, mine.text
    assert theirs.status_code == 201, theirs.text
    assert (mine.json()["version"], theirs.json()["version"]) == (2, 3)
    assert theirs.json()["actor"].startswith("editor:")


# -- expected_version ---------------------------------------------------------------------------


async def test_a_matching_expected_version_appends(http: httpx.AsyncClient, story_id: str) -> None:
    """expected_version equal to the story's version appends the next version."""
    await open_story(http, story_id)
    r = await http.post(
        f"/stories/{story_id}/events",
        json={"type": "entry.published", "data": {"body": "<p>x</p>"}, "expected_version": 1},
    )
    assert r.status_code == 201, r.text
    assert r.json()["version"] == 2


async def test_a_stale_expected_version_is_a_conflict_naming_the_current_one(
    http: httpx.AsyncClient, story_id: str
) -> None:
    """A write based on an old version is 409 version_conflict with details.current_version."""
    await open_story(http, story_id)
    await publish(http, story_id)
    r = await http.post(
        f"/stories/{story_id}/events",
        json={"type": "entry.published", "data": {"body": "<p>x</p>"}, "expected_version": 1},
    )
    assert r.status_code == 409
    assert error_code(r) == "version_conflict"
    assert r.json()["error"]["details"]["current_version"] == 2
    assert len(await events(http, story_id)) == 2


# -- reading the state --------------------------------------------------------------------------


async def test_paging_shows_every_entry_once_newest_first(
    http: httpx.AsyncClient, story_id: str
) -> None:
    """Seven entries with limit 3 come in pages of 3, 3 and 1; next_before is null at the end."""
    await open_story(http, story_id)
    for n in range(1, 8):
        await publish(http, story_id, entry_id=f"e{n}")
    page = await state(http, story_id, 8, limit=3)
    seen, sizes = [], []
    while True:
        seen += [e["entry_id"] for e in page["entries"]]
        sizes.append(len(page["entries"]))
        if page["next_before"] is None:
            break
        r = await http.get(
            f"/stories/{story_id}", params={"limit": 3, "before": page["next_before"]}
        )
        assert r.status_code == 200
        page = r.json()
    assert seen == [f"e{n}" for n in range(7, 0, -1)]
    assert sizes == [3, 3, 1]


async def test_a_limit_above_500_is_clamped_to_500(http: httpx.AsyncClient, story_id: str) -> None:
    """With 501 entries, limit=100000 answers 500 of them and a cursor to the last one."""
    await open_story(http, story_id)
    gate = asyncio.Semaphore(16)

    async def one(n: int) -> None:
        async with gate:
            await publish(http, story_id, entry_id=f"e{n}")

    await asyncio.gather(*(one(n) for n in range(501)))
    page = await state(http, story_id, 502, limit=100_000)
    assert len(page["entries"]) == 500
    assert page["next_before"] is not None
    r = await http.get(f"/stories/{story_id}", params={"before": page["next_before"]})
    rest = r.json()["entries"]
    assert len(rest) == 1
    assert r.json()["next_before"] is None
    ids = {e["entry_id"] for e in page["entries"]} | {rest[0]["entry_id"]}
    assert len(ids) == 501


@pytest.mark.parametrize(
    "before",
    [
        pytest.param("abc", id="letters"),
        pytest.param("-1", id="negative"),
        pytest.param("0", id="zero"),
        pytest.param("1.5", id="fraction"),
        pytest.param("", id="empty"),
        pytest.param("²", id="superscript-digit"),
    ],
)
async def test_a_bad_before_cursor_is_bad_request(
    http: httpx.AsyncClient, story_id: str, before: str
) -> None:
    """A cursor that next_before could not have given is 400 bad_request."""
    await open_story(http, story_id)
    r = await http.get(f"/stories/{story_id}", params={"before": before})
    assert r.status_code == 400
    assert error_code(r) == "bad_request"


@pytest.mark.parametrize("limit", ["0", "-3", "ten", "2e1", ""])
async def test_a_bad_limit_is_bad_request(
    http: httpx.AsyncClient, story_id: str, limit: str
) -> None:
    """A limit that is not a positive integer is 400 bad_request."""
    await open_story(http, story_id)
    r = await http.get(f"/stories/{story_id}", params={"limit": limit})
    assert r.status_code == 400
    assert error_code(r) == "bad_request"


@pytest.mark.parametrize(
    ("where", "name"),
    [
        ("state", "limit"),
        ("state", "before"),
        ("events", "from_version"),
        ("events", "to_version"),
        ("events", "limit"),
    ],
)
async def test_an_enormous_number_in_a_query_is_read_as_a_large_one(
    http: httpx.AsyncClient, story_id: str, where: str, name: str
) -> None:
    """A 25- or 5000-digit limit, cursor or version is answered (clamped), never a 500."""
    await open_story(http, story_id)
    await state(http, story_id, 1)
    path = f"/stories/{story_id}" + ("/events" if where == "events" else "")
    for digits in (25, 5000):
        r = await http.get(path, params={name: "9" * digits})
        assert r.status_code == 200, r.text


async def test_the_etag_is_the_version_and_if_none_match_gives_304(
    http: httpx.AsyncClient, story_id: str
) -> None:
    """ETag is the strong "<version>"; sending it back is 304 until the story moves on."""
    await open_story(http, story_id)
    await publish(http, story_id)
    r = await http.get(f"/stories/{story_id}", params={"min_version": 2})
    assert r.headers["etag"] == '"2"'
    r = await http.get(f"/stories/{story_id}", headers={"If-None-Match": '"2"'})
    assert r.status_code == 304
    assert r.content == b""
    assert r.headers["etag"] == '"2"'
    await publish(http, story_id)
    r = await http.get(
        f"/stories/{story_id}", params={"min_version": 3}, headers={"If-None-Match": '"2"'}
    )
    assert r.status_code == 200
    assert r.headers["etag"] == '"3"'
    assert r.json()["version"] == 3


async def test_min_version_waits_for_the_write_and_returns_it(
    http: httpx.AsyncClient, story_id: str
) -> None:
    """A read asking for a version not yet written waits, then answers with that state."""
    await open_story(http, story_id)
    await state(http, story_id, 1)
    waiting = asyncio.create_task(http.get(f"/stories/{story_id}", params={"min_version": 2}))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    await publish(http, story_id, entry_id="late")
    r = await waiting
    assert r.status_code == 200
    assert r.json()["version"] == 2
    assert [e["entry_id"] for e in r.json()["entries"]] == ["late"]


async def test_min_version_far_ahead_is_projection_lagging_after_5_seconds(
    http: httpx.AsyncClient, story_id: str
) -> None:
    """A version that never comes is 504 projection_lagging after about five seconds."""
    await open_story(http, story_id)
    started = time.monotonic()
    r = await http.get(f"/stories/{story_id}", params={"min_version": 1000})
    waited = time.monotonic() - started
    assert r.status_code == 504
    assert error_code(r) == "projection_lagging"
    assert 4.5 <= waited < 10


@pytest.mark.parametrize("story", ["never-opened-{uuid}", "Not_A_Story", "a" * 65, "-lead"])
async def test_an_unknown_or_impossible_story_is_unknown_story(
    anonymous: httpx.AsyncClient, story: str
) -> None:
    """A story that was never opened, or whose id breaks the pattern, is 404 unknown_story."""
    r = await anonymous.get(f"/stories/{story.replace('{uuid}', uuid.uuid4().hex[:8])}")
    assert r.status_code == 404
    assert error_code(r) == "unknown_story"


async def test_the_story_list_puts_the_latest_activity_first(
    http: httpx.AsyncClient, anonymous: httpx.AsyncClient, story_id: str
) -> None:
    """GET /stories lists new stories with their fields; a fresh write moves one to the top."""
    first, second = f"{story_id}-a", f"{story_id}-b"
    await open_story(http, first, "First")
    await state(http, first, 1)
    await asyncio.sleep(0.01)
    await open_story(http, second, "Second")
    await state(http, second, 1)

    async def listed() -> list[dict[str, Any]]:
        r = await anonymous.get("/stories")
        assert r.status_code == 200
        stories: list[dict[str, Any]] = r.json()["stories"]
        return [s for s in stories if s["story"] in {first, second}]

    ours = await listed()
    assert [s["story"] for s in ours] == [second, first]
    assert set(ours[0]) == {"story", "title", "status", "version", "updated_at"}
    assert ours[0]["title"] == "Second"
    assert ours[0]["status"] == "live"
    assert ours[0]["version"] == 1
    await asyncio.sleep(0.01)
    await publish(http, first)
    await state(http, first, 2)
    ours = await listed()
    assert [s["story"] for s in ours] == [first, second]
    assert ours[0]["version"] == 2
    assert ours[0]["updated_at"] > ours[1]["updated_at"]


async def test_a_retraction_shows_a_tombstone_with_its_note(
    http: httpx.AsyncClient, story_id: str
) -> None:
    """A retracted entry reads with body null, no embeds and the retraction's note."""
    await open_story(http, story_id)
    await publish(http, story_id, entry_id="e1")
    r = await http.post(
        f"/stories/{story_id}/events",
        json={
            "type": "embed.attached",
            "data": {"entry_id": "e1", "kind": "image", "url": "https://example.com/a.jpg"},
        },
    )
    assert r.status_code == 201, r.text
    r = await http.post(
        f"/stories/{story_id}/events",
        json={"type": "entry.retracted", "data": {"entry_id": "e1", "note": "Unverified"}},
    )
    assert r.status_code == 201, r.text
    retracted = r.json()
    (entry,) = (await state(http, story_id, 4))["entries"]
    assert entry["status"] == "retracted"
    assert entry["body"] is None
    assert entry["embeds"] == []
    assert entry["retraction"] == {
        "note": "Unverified",
        "at": retracted["recorded_at"],
        "version": 4,
    }


async def test_a_correction_shows_its_note_time_and_version(
    http: httpx.AsyncClient, story_id: str
) -> None:
    """A corrected entry reads with the new body and {note, at, version} in corrections."""
    await open_story(http, story_id)
    await publish(http, story_id, "<p>Ten dead</p>", entry_id="e1")
    r = await http.post(
        f"/stories/{story_id}/events",
        json={
            "type": "entry.corrected",
            "data": {"entry_id": "e1", "body": "<p>Twelve dead</p>", "note": "Toll revised"},
        },
    )
    assert r.status_code == 201, r.text
    (entry,) = (await state(http, story_id, 3))["entries"]
    assert entry["body"] == "<p>Twelve dead</p>"
    assert entry["corrections"] == [
        {"note": "Toll revised", "at": r.json()["recorded_at"], "version": 3}
    ]
    assert entry["status"] == "published"


# -- history ------------------------------------------------------------------------------------


async def test_history_needs_an_auditor_or_admin(
    anonymous: httpx.AsyncClient, editor: httpx.AsyncClient, auditor_token: str, story_id: str
) -> None:
    """GET …/events is 401 without a token, 403 for an editor, 200 for an auditor."""
    r = await editor.post("/stories", json={"story": story_id, "title": "Audit"})
    assert r.status_code == 201, r.text
    r = await anonymous.get(f"/stories/{story_id}/events")
    assert r.status_code == 401
    assert error_code(r) == "unauthorized"
    r = await editor.get(f"/stories/{story_id}/events")
    assert r.status_code == 403
    assert error_code(r) == "forbidden"
    r = await anonymous.get(
        f"/stories/{story_id}/events", headers={"Authorization": f"Bearer {auditor_token}"}
    )
    assert r.status_code == 200
    assert [e["version"] for e in r.json()["events"]] == [1]


async def test_history_pages_with_from_version_and_limit(
    http: httpx.AsyncClient, story_id: str
) -> None:
    """Five events with limit 2 come as 1-2, 3-4, 5; next_from_version is null at the end."""
    await open_story(http, story_id)
    for _ in range(4):
        await publish(http, story_id)
    pages, start = [], 1
    while start is not None:
        r = await http.get(
            f"/stories/{story_id}/events", params={"from_version": start, "limit": 2}
        )
        assert r.status_code == 200
        pages.append([e["version"] for e in r.json()["events"]])
        start = r.json()["next_from_version"]
    assert pages == [[1, 2], [3, 4], [5]]
    r = await http.get(f"/stories/{story_id}/events", params={"to_version": 3})
    assert [e["version"] for e in r.json()["events"]] == [1, 2, 3]
    assert r.json()["next_from_version"] is None


async def test_a_history_limit_above_10000_is_clamped(
    http: httpx.AsyncClient, story_id: str
) -> None:
    """limit=1000000 is not an error: it is read as 10000."""
    await open_story(http, story_id)
    await publish(http, story_id)
    r = await http.get(f"/stories/{story_id}/events", params={"limit": 1_000_000})
    assert r.status_code == 200
    assert [e["version"] for e in r.json()["events"]] == [1, 2]
    assert r.json()["next_from_version"] is None


# -- tokens -------------------------------------------------------------------------------------


async def test_an_unknown_role_is_invalid_request(http: httpx.AsyncClient) -> None:
    """POST /tokens with a role the contract does not name is 422 invalid_request."""
    r = await http.post("/tokens", json={"role": "owner", "name": f"x-{uuid.uuid4().hex[:8]}"})
    assert r.status_code == 422
    assert error_code(r) == "invalid_request"


async def test_a_taken_token_name_is_token_name_taken(http: httpx.AsyncClient) -> None:
    """A second token with a name in use is 409 token_name_taken."""
    name = f"dup-{uuid.uuid4().hex[:8]}"
    assert (await http.post("/tokens", json={"role": "editor", "name": name})).status_code == 201
    r = await http.post("/tokens", json={"role": "auditor", "name": name})
    assert r.status_code == 409
    assert error_code(r) == "token_name_taken"


async def test_an_editor_cannot_create_tokens(editor: httpx.AsyncClient) -> None:
    """Only an admin manages tokens: an editor's POST /tokens is 403."""
    r = await editor.post("/tokens", json={"role": "admin", "name": f"x-{uuid.uuid4().hex[:8]}"})
    assert r.status_code == 403
    assert error_code(r) == "forbidden"


async def test_a_revoked_token_is_refused_at_once(
    http: httpx.AsyncClient, api_url: str, story_id: str
) -> None:
    """DELETE /tokens/{name} is 204, and the very next request with that token is 401."""
    name = f"gone-{uuid.uuid4().hex[:8]}"
    r = await http.post("/tokens", json={"role": "editor", "name": name})
    headers = {"Authorization": f"Bearer {r.json()['token']}"}
    async with httpx.AsyncClient(base_url=api_url, headers=headers) as desk:
        r = await desk.post("/stories", json={"story": story_id, "title": "Before"})
        assert r.status_code == 201, r.text
        r = await http.delete(f"/tokens/{name}")
        assert r.status_code == 204
        assert r.content == b""
        r = await desk.post(
            f"/stories/{story_id}/events",
            json={"type": "entry.published", "data": {"body": "<p>After</p>"}},
        )
        assert r.status_code == 401
        assert error_code(r) == "unauthorized"
    assert len(await events(http, story_id)) == 1


async def test_revoking_an_unknown_token_is_unknown_token(http: httpx.AsyncClient) -> None:
    """DELETE /tokens/{name} for a name no token has is 404 unknown_token."""
    r = await http.delete(f"/tokens/nobody-{uuid.uuid4().hex[:8]}")
    assert r.status_code == 404
    assert error_code(r) == "unknown_token"


# -- operations ---------------------------------------------------------------------------------


async def test_healthz_reports_the_store_reachable(anonymous: httpx.AsyncClient) -> None:
    """GET /healthz is 200 while the store answers."""
    r = await anonymous.get("/healthz")
    assert r.status_code == 200
    assert r.json()["ok"] is True


async def test_metrics_expose_appends_refusals_and_lag(
    http: httpx.AsyncClient, anonymous: httpx.AsyncClient, story_id: str
) -> None:
    """/metrics has dateline_appends_total, dateline_refusals_total by code and the lag."""
    await open_story(http, story_id)
    r = await http.post(
        f"/stories/{story_id}/events",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 400
    r = await anonymous.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert re.search(r'^dateline_appends_total\{type="story.opened"\} [1-9]', text, re.M)
    assert re.search(r'^dateline_refusals_total\{code="bad_request"\} [1-9]', text, re.M)
    assert re.search(r"^dateline_projector_lag \d", text, re.M)


async def test_openapi_lists_every_contract_path(anonymous: httpx.AsyncClient) -> None:
    """/openapi.json documents every path the contract names."""
    r = await anonymous.get("/openapi.json")
    assert r.status_code == 200
    paths = set(r.json()["paths"])
    assert {
        "/stories",
        "/stories/{story}",
        "/stories/{story}/events",
        "/tokens",
        "/tokens/{name}",
        "/healthz",
        "/metrics",
    } <= paths
