"""Running the API: tokens, /healthz and /metrics (CONTRACT "HTTP API")."""

from __future__ import annotations

import re
import uuid

import httpx

from tests.services.http.conftest import error_code, events, open_story

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
