"""Who may do what: no token is 401, a token of a lesser role 403 (CONTRACT "HTTP API")."""

from __future__ import annotations

import uuid

import httpx

from tests.services.http.conftest import error_code


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


async def test_an_editor_cannot_create_tokens(editor: httpx.AsyncClient) -> None:
    """Only an admin manages tokens: an editor's POST /tokens is 403."""
    r = await editor.post("/tokens", json={"role": "admin", "name": f"x-{uuid.uuid4().hex[:8]}"})
    assert r.status_code == 403
    assert error_code(r) == "forbidden"
