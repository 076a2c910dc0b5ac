"""Verification on the real server: the chain re-walked, tampering named at its version."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as redis

from services.store import keys
from services.store.record import Store
from tests.services.audit.conftest import build


async def rewrite(client: redis.Redis, story: str, change: Any) -> None:
    """Rebuild a story's stream with ``change(version, envelope dict)`` applied: a forger's edit."""
    name = keys.events(story)
    rows = await client.xrange(name)
    await client.delete(name)
    for stream_id, fields in rows:
        envelope = orjson.loads(fields[b"e"])
        changed = change(int(stream_id.split(b"-")[0]), envelope)
        if changed is not None:
            await client.xadd(name, {"f": b"1", "e": orjson.dumps(changed)}, id=stream_id)


@pytest.mark.parametrize(
    ("name", "change", "bad"),
    [
        (
            "data rewritten",
            lambda v, e: {**e, "data": {**e["data"], "body": "<p>Rewritten</p>"}} if v == 5 else e,
            5,
        ),
        ("prev_hash rewritten", lambda v, e: {**e, "prev_hash": "f" * 64} if v == 7 else e, 7),
        ("an event deleted", lambda v, e: None if v == 4 else e, 4),
        ("the last event deleted", lambda v, e: None if v == 10 else e, 10),
        ("actor rewritten", lambda v, e: {**e, "actor": "editor:someone-else"} if v == 3 else e, 3),
    ],
)
async def test_verify_names_the_first_tampered_version(
    auditor: httpx.AsyncClient,
    store: Store,
    client: redis.Redis,
    story_id: str,
    name: str,
    change: Any,
    bad: int,
) -> None:
    """Any rewrite of the record behind the API is caught at exactly the version it touched."""
    await build(store, story_id, 10, seed=9)
    r = await auditor.get(f"/stories/{story_id}/verify")
    assert r.json()["ok"] is True
    assert r.json()["events"] == 10
    await rewrite(client, story_id, change)
    r = await auditor.get(f"/stories/{story_id}/verify")
    assert r.json()["ok"] is False, name
    assert r.json()["first_bad_version"] == bad, name
