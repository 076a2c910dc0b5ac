"""The API app as a whole: what /openapi.json documents, and a write read back end to end."""

from __future__ import annotations

import httpx


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


async def test_a_published_entry_is_readable_with_min_version(
    http: httpx.AsyncClient, story_id: str
) -> None:
    """Opening a story and publishing an entry shows it on the story page at that version."""
    r = await http.post("/stories", json={"story": story_id, "title": "Smoke"})
    assert r.status_code == 201, r.text
    r = await http.post(
        f"/stories/{story_id}/events",
        json={"type": "entry.published", "data": {"body": "<p>First</p>", "entry_id": "one"}},
    )
    assert r.status_code == 201, r.text
    assert r.json()["version"] == 2
    r = await http.get(f"/stories/{story_id}", params={"min_version": 2})
    assert r.status_code == 200
    assert r.headers["etag"] == '"2"'
    assert [e["entry_id"] for e in r.json()["entries"]] == ["one"]
