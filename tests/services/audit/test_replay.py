"""Replay on the real server: any version or moment, checkpoints checked, the archived page."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as redis
from websockets.asyncio.client import connect

from events.chain import Envelope
from events.decide import parse_command, parse_open
from projections.changes import follow
from projections.story import StoryState, apply, render
from services.store import keys
from services.store.keys import CHECKPOINT_EVERY
from services.store.readmodel import ReadModel
from services.store.record import Store
from tests.services.audit.conftest import build

ALL = 500


def fresh(story: str, envelopes: list[Envelope], version: int, limit: int = ALL) -> dict[str, Any]:
    state = StoryState(story)
    for envelope in envelopes[:version]:
        state = apply(state, envelope)
    return render(state, limit)


async def test_replay_at_any_version_is_what_readers_saw(
    auditor: httpx.AsyncClient, store: Store, story_id: str
) -> None:
    """Across a checkpoint, replay at sampled versions equals a fold of the record to there."""
    events = await build(store, story_id, CHECKPOINT_EVERY + 150)
    assert await store.client.hget(keys.checkpoints(story_id), str(CHECKPOINT_EVERY))
    versions = [1, 2, 17, CHECKPOINT_EVERY - 1, CHECKPOINT_EVERY, CHECKPOINT_EVERY + 1, len(events)]
    versions += random.Random(3).sample(range(1, len(events) + 1), 8)
    for version in versions:
        r = await auditor.get(
            f"/stories/{story_id}/replay", params={"version": version, "limit": ALL}
        )
        assert r.status_code == 200, r.text
        assert r.json() == fresh(story_id, events, version), f"replay differs at {version}"


async def test_a_corrupted_checkpoint_is_detected_and_bypassed(
    auditor: httpx.AsyncClient, store: Store, client: redis.Redis, story_id: str
) -> None:
    """A checkpoint rewritten behind our back is noticed (digest, version hash) and not used."""
    events = await build(store, story_id, CHECKPOINT_EVERY + 20, seed=5)
    name = keys.checkpoints(story_id)
    saved = orjson.loads(await client.hget(name, str(CHECKPOINT_EVERY)))
    saved["view"]["meta"]["title"] = "A title nobody ever saw"
    await client.hset(name, str(CHECKPOINT_EVERY), orjson.dumps(saved))
    r = await auditor.get(
        f"/stories/{story_id}/replay", params={"version": len(events), "limit": ALL}
    )
    assert r.json() == fresh(story_id, events, len(events))
    assert r.json()["title"] == "Audit desk"
    metrics = (await auditor.get("/metrics")).text
    bypassed = [
        line for line in metrics.splitlines() if line.startswith("dateline_checkpoints_bypassed ")
    ]
    assert bypassed
    assert float(bypassed[0].split()[1]) >= 1
    r = await auditor.get(f"/stories/{story_id}/verify")
    assert r.json()["ok"] is True  # verify never looked at the checkpoint


async def test_replay_at_a_moment_includes_an_event_recorded_exactly_then(
    auditor: httpx.AsyncClient, store: Store, story_id: str
) -> None:
    """``at=`` is the last event at or before the instant; earlier than the story is 404."""
    events = await build(store, story_id, 12)
    target = events[6]
    r = await auditor.get(f"/stories/{story_id}/replay", params={"at": target.recorded_at})
    assert r.json()["version"] == 7
    offset = target.recorded_at.replace("Z", "+00:00")
    r = await auditor.get(f"/stories/{story_id}/replay", params={"at": offset})
    assert r.json()["version"] == 7
    r = await auditor.get(f"/stories/{story_id}/replay", params={"at": "2001-01-01T00:00:00Z"})
    assert (r.status_code, r.json()["error"]["code"]) == (404, "unknown_story")
    r = await auditor.get(f"/stories/{story_id}/replay", params={"at": "2030-01-01T00:00:00"})
    assert (r.status_code, r.json()["error"]["code"]) == (400, "bad_request")
    r = await auditor.get(f"/stories/{story_id}/replay", params={"at": "2099-01-01T00:00:00Z"})
    assert r.json()["version"] == 12


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({}, "bad_request"),
        ({"version": "0"}, "bad_request"),
        ({"version": "99"}, "bad_request"),
        ({"version": "1", "at": "2030-01-01T00:00:00Z"}, "bad_request"),
        ({"version": "x"}, "bad_request"),
        ({"version": "1", "format": "pdf"}, "bad_request"),
    ],
)
async def test_bad_replay_queries_are_refused(
    auditor: httpx.AsyncClient, store: Store, story_id: str, params: dict[str, str], code: str
) -> None:
    """Neither or both of version and at, versions outside the story, unknown formats: 400."""
    await build(store, story_id, 3)
    r = await auditor.get(f"/stories/{story_id}/replay", params=params)
    assert (r.status_code, r.json()["error"]["code"]) == (400, code)


async def test_audit_endpoints_need_an_auditor(
    http: httpx.AsyncClient, api_url: str, editor_token: str, store: Store, story_id: str
) -> None:
    """No token is 401; an editor's token is 403; the admin may."""
    await build(store, story_id, 3)
    for path in ("replay?version=1", "verify", "entries/e2/revisions"):
        assert (
            await httpx.AsyncClient(base_url=api_url).get(f"/stories/{story_id}/{path}")
        ).status_code == 401
        editor = {"Authorization": f"Bearer {editor_token}"}
        assert (await http.get(f"/stories/{story_id}/{path}", headers=editor)).status_code == 403
        assert (await http.get(f"/stories/{story_id}/{path}")).status_code == 200


async def test_the_archived_page_shows_the_story_as_it_stood(
    auditor: httpx.AsyncClient, store: Store, story_id: str
) -> None:
    """format=html renders the reader page at that version, with a banner and no live script."""
    await store.append(story_id, parse_open({"story": story_id, "title": "Then"}), actor="editor:a")
    await store.append(
        story_id,
        parse_command("entry.published", {"entry_id": "a", "body": "<p>Before</p>"}),
        actor="editor:a",
    )
    await store.append(
        story_id,
        parse_command(
            "entry.corrected", {"entry_id": "a", "body": "<p>After</p>", "note": "Changed."}
        ),
        actor="editor:a",
    )
    await ReadModel(store.client).wait_for(story_id, 3, 10)
    r = await auditor.get(f"/stories/{story_id}/replay", params={"version": 2, "format": "html"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "<p>Before</p>" in r.text
    assert "After" not in r.text
    assert "Archived view" in r.text
    assert "version 2" in r.text
    assert "reader.js" not in r.text
    assert 'data-version="2"' in r.text
    assert "connect-src 'none'" in r.headers["content-security-policy"]


async def test_the_frames_a_subscriber_received_fold_to_the_replayed_state(
    auditor: httpx.AsyncClient, ws_url: str, store: Store, story_id: str
) -> None:
    """Following the live frames gives, at every version, what replay says readers saw."""
    await store.append(story_id, parse_open({"story": story_id, "title": "Live"}), actor="editor:a")
    await ReadModel(store.client).wait_for(story_id, 1, 10)
    async with connect(ws_url) as ws:
        await ws.send(orjson.dumps({"op": "subscribe", "story": story_id}).decode())
        held = orjson.loads(await ws.recv())["state"]
        task = asyncio.create_task(build(store, story_id, 60, seed=11))
        seen: list[dict[str, Any]] = []
        while not seen or seen[-1]["version"] < 60:
            change = orjson.loads(await asyncio.wait_for(ws.recv(), 15))
            held = follow(held, change)
            seen.append(held)
        events = await task
    for state in seen:
        r = await auditor.get(
            f"/stories/{story_id}/replay", params={"version": state["version"], "limit": ALL}
        )
        expected = r.json()
        assert {**state, "next_before": None} == {**expected, "next_before": None}
        assert state == fresh(story_id, events, state["version"], ALL) | {
            "next_before": state["next_before"]
        }
