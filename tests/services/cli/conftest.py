"""Fixtures of the command line's tests: stories opened and written through the API."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.services.cli.dateline import dateline

HISTORY = [
    ("entry.published", {"entry_id": "e1", "body": "<p>Winds of 150 km/h.</p>"}),
    ("entry.published", {"entry_id": "e2", "body": "<p>Teh port is closed.</p>"}),
    ("story.updated", {"title": "Storm Oriane, live"}),
    (
        "entry.corrected",
        {"entry_id": "e1", "body": "<p>Winds of 130 km/h.</p>", "note": "We said 150 km/h."},
    ),
    ("entry.edited", {"entry_id": "e2", "body": "<p>The port is closed.</p>"}),
    ("entry.pinned", {"entry_id": "e1"}),
    ("entry.retracted", {"entry_id": "e2", "note": "The port reopened; this was wrong."}),
]
"""Versions 2 to 8 after ``story.opened`` ("Storm, live")."""


@pytest.fixture
def history(api_url: str, editor_token: str, story_id: str) -> list[dict[str, Any]]:
    """A story of 8 events: two entries, a title change, a correction, an edit, a pin, a retraction."""
    with httpx.Client(
        base_url=api_url, headers={"Authorization": f"Bearer {editor_token}"}
    ) as http:
        r = http.post("/stories", json={"story": story_id, "title": "Storm, live"})
        assert r.status_code == 201, r.text
        envelopes = [r.json()]
        for event_type, data in HISTORY:
            r = http.post(f"/stories/{story_id}/events", json={"type": event_type, "data": data})
            assert r.status_code == 201, r.text
            envelopes.append(r.json())
        http.get(f"/stories/{story_id}", params={"min_version": len(envelopes)})
    return envelopes


@pytest.fixture
def opened(api_url: str, editor_token: str, story_id: str) -> str:
    """A story opened through the CLI (version 1)."""
    result = dateline(api_url, editor_token, "story", "open", story_id, "--title", "Storm, live")
    assert result.exit_code == 0, result.stderr
    return story_id
