"""What a request may say: media type, body size and depth, query integers, ids (CONTRACT "Errors", "Edges")."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.services.http.conftest import canonical, error_code, events, open_story, state

LIMIT = 256 * 1024
"""The documented body limit (CONTRACT "Errors": bodies over 256 KiB are 413)."""


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


@pytest.mark.parametrize("story", ["never-opened-{uuid}", "Not_A_Story", "a" * 65, "-lead"])
async def test_an_unknown_or_impossible_story_is_unknown_story(
    anonymous: httpx.AsyncClient, story: str
) -> None:
    """A story that was never opened, or whose id breaks the pattern, is 404 unknown_story."""
    r = await anonymous.get(f"/stories/{story.replace('{uuid}', uuid.uuid4().hex[:8])}")
    assert r.status_code == 404
    assert error_code(r) == "unknown_story"
