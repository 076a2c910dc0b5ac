"""What the audit tests share: a story built through the store, an auditor's HTTP client."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import httpx
import pytest

from events.chain import Envelope
from events.decide import parse_command, parse_open
from services.store.readmodel import ReadModel
from services.store.record import Store


async def build(store: Store, story: str, events: int, seed: int = 1) -> list[Envelope]:
    """A story of ``events`` events: entries, corrections, edits, retractions, pins, embeds."""
    rng = random.Random(seed)
    if (await store.head(story))[0] == 0:
        await store.append(
            story, parse_open({"story": story, "title": "Audit desk"}), actor="editor:a"
        )
    live: list[str] = []
    n = 0
    while (await store.head(story))[0] < events:
        n += 1
        roll = rng.random()
        if roll < 0.6 or len(live) < 3:
            data = {
                "entry_id": f"e{n}",
                "body": f"<p>Update {n}</p>",
                "key_event": rng.random() < 0.1,
            }
            await store.append(story, parse_command("entry.published", data), actor="editor:a")
            live.append(f"e{n}")
        elif roll < 0.75:
            data = {
                "entry_id": rng.choice(live),
                "body": f"<p>Corrected {n}</p>",
                "note": f"Fix {n}",
            }
            await store.append(story, parse_command("entry.corrected", data), actor="editor:b")
        elif roll < 0.82:
            data = {"entry_id": rng.choice(live), "body": f"<p>Edited {n}</p>"}
            await store.append(story, parse_command("entry.edited", data), actor="editor:b")
        elif roll < 0.87:
            victim = live.pop(rng.randrange(len(live)))
            data = {"entry_id": victim, "note": f"Withdrawn {n}"}
            await store.append(story, parse_command("entry.retracted", data), actor="editor:c")
        elif roll < 0.94:
            data = {"entry_id": rng.choice(live)}
            await store.append(story, parse_command("entry.pinned", data), actor="editor:a")
        else:
            data = {"entry_id": rng.choice(live), "kind": "link", "url": f"https://example.org/{n}"}
            await store.append(story, parse_command("embed.attached", data), actor="editor:a")
    envelopes = await store.read(story)
    await ReadModel(store.client).wait_for(story, len(envelopes), 30)
    return envelopes


@pytest.fixture
async def auditor(api_url: str, auditor_token: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=api_url, headers={"Authorization": f"Bearer {auditor_token}"}, timeout=30
    ) as c:
        yield c
