"""Revisions on the real server: every body an entry has had, with its note and diff."""

from __future__ import annotations

import httpx

from events.decide import parse_command, parse_open
from services.store.record import Store


async def test_revisions_list_every_body_with_its_note_and_diff(
    auditor: httpx.AsyncClient, store: Store, story_id: str
) -> None:
    """Published, edited, corrected and retracted each make a revision, in version order."""
    await store.append(story_id, parse_open({"story": story_id, "title": "R"}), actor="editor:a")
    steps = [
        ("entry.published", {"entry_id": "x", "body": "<p>Three dead</p>", "headline": "Toll"}),
        ("entry.pinned", {"entry_id": "x"}),
        ("entry.edited", {"entry_id": "x", "body": "<p>Three people dead</p>"}),
        (
            "entry.corrected",
            {"entry_id": "x", "body": "<p>Two people dead</p>", "note": "The toll was two."},
        ),
        ("entry.retracted", {"entry_id": "x", "note": "Not confirmed by officials."}),
    ]
    for kind, data in steps:
        await store.append(story_id, parse_command(kind, data), actor="editor:desk")
    r = await auditor.get(f"/stories/{story_id}/entries/x/revisions")
    body = r.json()
    assert body["story"] == story_id
    assert body["entry_id"] == "x"
    revisions = body["revisions"]
    assert [v["type"] for v in revisions] == [k for k, _ in steps if k != "entry.pinned"]
    assert [v["version"] for v in revisions] == [2, 4, 5, 6]
    assert revisions[0]["diff"] == ""
    assert revisions[2]["note"] == "The toll was two."
    assert "-<p>Three people dead</p>" in revisions[2]["diff"]
    assert "+<p>Two people dead</p>" in revisions[2]["diff"]
    assert revisions[3]["body"] is None
    assert revisions[3]["note"] == "Not confirmed by officials."
    assert all(v["actor"] == "editor:desk" and v["headline"] == "Toll" for v in revisions)
    r = await auditor.get(f"/stories/{story_id}/entries/nope/revisions")
    assert (r.status_code, r.json()["error"]["code"]) == (404, "unknown_entry")
