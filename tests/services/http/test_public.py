"""Public reads of current state: paging, ETag and 304, min_version, the story list (CONTRACT "HTTP API")."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from tests.services.http.conftest import error_code, open_story, publish, state

# -- reading the state --------------------------------------------------------------------------


async def test_paging_shows_every_entry_once_newest_first(
    http: httpx.AsyncClient, story_id: str
) -> None:
    """Seven entries with limit 3 come in pages of 3, 3 and 1; next_before is null at the end."""
    await open_story(http, story_id)
    for n in range(1, 8):
        await publish(http, story_id, entry_id=f"e{n}")
    page = await state(http, story_id, 8, limit=3)
    seen, sizes = [], []
    while True:
        seen += [e["entry_id"] for e in page["entries"]]
        sizes.append(len(page["entries"]))
        if page["next_before"] is None:
            break
        r = await http.get(
            f"/stories/{story_id}", params={"limit": 3, "before": page["next_before"]}
        )
        assert r.status_code == 200
        page = r.json()
    assert seen == [f"e{n}" for n in range(7, 0, -1)]
    assert sizes == [3, 3, 1]


async def test_a_limit_above_500_is_clamped_to_500(http: httpx.AsyncClient, story_id: str) -> None:
    """With 501 entries, limit=100000 answers 500 of them and a cursor to the last one."""
    await open_story(http, story_id)
    gate = asyncio.Semaphore(16)

    async def one(n: int) -> None:
        async with gate:
            await publish(http, story_id, entry_id=f"e{n}")

    await asyncio.gather(*(one(n) for n in range(501)))
    page = await state(http, story_id, 502, limit=100_000)
    assert len(page["entries"]) == 500
    assert page["next_before"] is not None
    r = await http.get(f"/stories/{story_id}", params={"before": page["next_before"]})
    rest = r.json()["entries"]
    assert len(rest) == 1
    assert r.json()["next_before"] is None
    ids = {e["entry_id"] for e in page["entries"]} | {rest[0]["entry_id"]}
    assert len(ids) == 501


async def test_the_etag_is_the_version_and_if_none_match_gives_304(
    http: httpx.AsyncClient, story_id: str
) -> None:
    """ETag is the strong "<version>"; sending it back is 304 until the story moves on."""
    await open_story(http, story_id)
    await publish(http, story_id)
    r = await http.get(f"/stories/{story_id}", params={"min_version": 2})
    assert r.headers["etag"] == '"2"'
    r = await http.get(f"/stories/{story_id}", headers={"If-None-Match": '"2"'})
    assert r.status_code == 304
    assert r.content == b""
    assert r.headers["etag"] == '"2"'
    await publish(http, story_id)
    r = await http.get(
        f"/stories/{story_id}", params={"min_version": 3}, headers={"If-None-Match": '"2"'}
    )
    assert r.status_code == 200
    assert r.headers["etag"] == '"3"'
    assert r.json()["version"] == 3


async def test_min_version_waits_for_the_write_and_returns_it(
    http: httpx.AsyncClient, story_id: str
) -> None:
    """A read asking for a version not yet written waits, then answers with that state."""
    await open_story(http, story_id)
    await state(http, story_id, 1)
    waiting = asyncio.create_task(http.get(f"/stories/{story_id}", params={"min_version": 2}))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    await publish(http, story_id, entry_id="late")
    r = await waiting
    assert r.status_code == 200
    assert r.json()["version"] == 2
    assert [e["entry_id"] for e in r.json()["entries"]] == ["late"]


async def test_min_version_far_ahead_is_projection_lagging_after_5_seconds(
    http: httpx.AsyncClient, story_id: str
) -> None:
    """A version that never comes is 504 projection_lagging after about five seconds."""
    await open_story(http, story_id)
    started = time.monotonic()
    r = await http.get(f"/stories/{story_id}", params={"min_version": 1000})
    waited = time.monotonic() - started
    assert r.status_code == 504
    assert error_code(r) == "projection_lagging"
    assert 4.5 <= waited < 10


async def test_the_story_list_puts_the_latest_activity_first(
    http: httpx.AsyncClient, anonymous: httpx.AsyncClient, story_id: str
) -> None:
    """GET /stories lists new stories with their fields; a fresh write moves one to the top."""
    first, second = f"{story_id}-a", f"{story_id}-b"
    await open_story(http, first, "First")
    await state(http, first, 1)
    await asyncio.sleep(0.01)
    await open_story(http, second, "Second")
    await state(http, second, 1)

    async def listed() -> list[dict[str, Any]]:
        r = await anonymous.get("/stories")
        assert r.status_code == 200
        stories: list[dict[str, Any]] = r.json()["stories"]
        return [s for s in stories if s["story"] in {first, second}]

    ours = await listed()
    assert [s["story"] for s in ours] == [second, first]
    assert set(ours[0]) == {"story", "title", "status", "version", "updated_at"}
    assert ours[0]["title"] == "Second"
    assert ours[0]["status"] == "live"
    assert ours[0]["version"] == 1
    await asyncio.sleep(0.01)
    await publish(http, first)
    await state(http, first, 2)
    ours = await listed()
    assert [s["story"] for s in ours] == [first, second]
    assert ours[0]["version"] == 2
    assert ours[0]["updated_at"] > ours[1]["updated_at"]


async def test_a_retraction_shows_a_tombstone_with_its_note(
    http: httpx.AsyncClient, story_id: str
) -> None:
    """A retracted entry reads with body null, no embeds and the retraction's note."""
    await open_story(http, story_id)
    await publish(http, story_id, entry_id="e1")
    r = await http.post(
        f"/stories/{story_id}/events",
        json={
            "type": "embed.attached",
            "data": {"entry_id": "e1", "kind": "image", "url": "https://example.com/a.jpg"},
        },
    )
    assert r.status_code == 201, r.text
    r = await http.post(
        f"/stories/{story_id}/events",
        json={"type": "entry.retracted", "data": {"entry_id": "e1", "note": "Unverified"}},
    )
    assert r.status_code == 201, r.text
    retracted = r.json()
    (entry,) = (await state(http, story_id, 4))["entries"]
    assert entry["status"] == "retracted"
    assert entry["body"] is None
    assert entry["embeds"] == []
    assert entry["retraction"] == {
        "note": "Unverified",
        "at": retracted["recorded_at"],
        "version": 4,
    }


async def test_a_correction_shows_its_note_time_and_version(
    http: httpx.AsyncClient, story_id: str
) -> None:
    """A corrected entry reads with the new body and {note, at, version, diff} in corrections."""
    await open_story(http, story_id)
    await publish(http, story_id, "<p>Ten dead</p>", entry_id="e1")
    r = await http.post(
        f"/stories/{story_id}/events",
        json={
            "type": "entry.corrected",
            "data": {"entry_id": "e1", "body": "<p>Twelve dead</p>", "note": "Toll revised"},
        },
    )
    assert r.status_code == 201, r.text
    (entry,) = (await state(http, story_id, 3))["entries"]
    assert entry["body"] == "<p>Twelve dead</p>"
    assert entry["corrections"] == [
        {
            "note": "Toll revised",
            "at": r.json()["recorded_at"],
            "version": 3,
            "diff": [["-", "Ten"], ["+", "Twelve"], ["=", " dead"]],
        }
    ]
    assert entry["status"] == "published"
