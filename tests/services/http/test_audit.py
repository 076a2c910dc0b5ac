"""The auditor's reads: history paging and its limit, replay in JSON or as a frozen page."""

from __future__ import annotations

import httpx
import pytest

from tests.services.http.conftest import error_code, open_story, publish

# -- history ------------------------------------------------------------------------------------


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


# -- replay -------------------------------------------------------------------------------------


async def test_a_replay_is_the_state_as_it_stood_at_that_version(
    http: httpx.AsyncClient, story_id: str
) -> None:
    """Without format, ?version=2 is the JSON state at version 2: later entries are not in it."""
    await open_story(http, story_id)
    await publish(http, story_id, entry_id="first")
    await publish(http, story_id, entry_id="second")
    r = await http.get(f"/stories/{story_id}/replay", params={"version": 2})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.json()["version"] == 2
    assert [e["entry_id"] for e in r.json()["entries"]] == ["first"]


async def test_a_replay_as_html_is_the_reader_page_frozen_at_that_version(
    http: httpx.AsyncClient, story_id: str
) -> None:
    """format=html is the reader page at that version, archived: no gateway, no live script."""
    await open_story(http, story_id)
    await publish(http, story_id, entry_id="first")
    await publish(http, story_id, entry_id="second")
    r = await http.get(f"/stories/{story_id}/replay", params={"version": 2, "format": "html"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert "connect-src 'none'" in r.headers["content-security-policy"]
    assert f'data-story="{story_id}" data-version="2" data-frozen' in r.text
    assert 'data-entry-id="first"' in r.text
    assert 'data-entry-id="second"' not in r.text
    assert "reader.js" not in r.text


@pytest.mark.parametrize("shape", ["xml", "JSON", ""])
async def test_a_replay_format_other_than_json_or_html_is_bad_request(
    http: httpx.AsyncClient, story_id: str, shape: str
) -> None:
    """Any other format, empty included, is 400 bad_request naming the parameter format."""
    await open_story(http, story_id)
    r = await http.get(f"/stories/{story_id}/replay", params={"version": 1, "format": shape})
    assert r.status_code == 400
    assert error_code(r) == "bad_request"
    assert r.json()["error"]["details"] == {"parameter": "format"}


async def test_openapi_names_the_replay_parameters_as_the_contract_does(
    anonymous: httpx.AsyncClient,
) -> None:
    """/openapi.json documents the replay's query parameters, ``format`` spelled so."""
    r = await anonymous.get("/openapi.json")
    replay = r.json()["paths"]["/stories/{story}/replay"]["get"]
    names = {p["name"] for p in replay["parameters"] if p["in"] == "query"}
    assert names == {"version", "at", "limit", "before", "format"}
