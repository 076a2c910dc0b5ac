"""The newsroom's writes as a tool sees them: envelopes, actors, Idempotency-Key, expected_version."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime

import httpx

from tests.services.http.conftest import canonical, error_code, events, open_story, publish, state

HEX64 = re.compile(r"^[0-9a-f]{64}$")
ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
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
