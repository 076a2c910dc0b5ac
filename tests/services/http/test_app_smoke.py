"""The write path end to end: open, publish, read your write."""

from __future__ import annotations

import httpx


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
