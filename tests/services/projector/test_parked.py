"""Poison events on the real server: retried, parked with their error, every other story flowing,
and folded again after a fix. These tests run projectors of their own, on databases of their own.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import orjson
import pytest
import redis.asyncio as redis

from events.chain import Envelope, seal
from events.decide import parse_command
from events.errors import InvalidState
from projections import changes
from services.projector import parked
from services.projector.consumers import Consumers
from services.projector.fold import Projector
from services.store import keys, parking
from services.store.keys import GROUP
from services.store.readmodel import ReadModel
from services.store.record import Store
from tests.services.projector.conftest import assert_state_is_a_fresh_fold, fill, wait_projected

LATER = {"body": "<p>After</p>", "entry_id": "after"}
CLAIM_MS = 200
"""The claim's idle time here: a poison event is delivered again every 0.2 s, not every 5 s."""


async def write_around_the_api(
    client: redis.Redis, store: Store, story: str, kind: str, data: dict[str, Any]
) -> int:
    """Append an event to the record and the feed directly, as a tool bypassing the API might:
    no decision checks it. Its version."""
    version, head_hash = await store.head(story)
    envelope = seal(
        event_id=str(uuid.uuid4()),
        story=story,
        version=version + 1,
        type=kind,
        data=data,
        actor="editor:rogue",
        recorded_at="2026-12-03T07:00:00.000000+00:00",
        idempotency_key=None,
        prev_hash=head_hash or "0" * 64,
    )
    raw = envelope.to_json()
    await client.xadd(keys.events(story), {"f": "1", "e": raw}, id=f"{envelope.version}-0")
    await client.hset(keys.head(story), mapping={"v": envelope.version, "h": envelope.hash})
    await client.xadd(keys.feed_of(story), {"s": story, "v": envelope.version, "__data__": raw})
    return envelope.version


async def wait_parked(client: redis.Redis, story: str, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for letter in await parking.parked(client):
            if letter["story"] == story:
                return letter
        await asyncio.sleep(0.05)
    raise AssertionError(f"{story} was never parked")


async def lag_while(client: redis.Redis, store: Store, stories: list[str], until: Any) -> float:
    """Append to ``stories`` every 0.1 s until ``until()`` is done; the longest any append took
    to be projected (seconds)."""
    reads, worst, n = ReadModel(client), 0.0, 0
    while not until():
        for story in stories:
            data = {"body": f"<p>Meanwhile {n}</p>", "entry_id": f"m{n}"}
            done = await store.append(story, parse_command("entry.published", data), actor="e:a")
            assert done.envelope is not None
            began = time.monotonic()
            await reads.wait_for(story, done.envelope.version, 5.0)
            worst = max(worst, time.monotonic() - began)
        n += 1
        await asyncio.sleep(0.1)
    return worst


async def test_a_poison_event_is_retried_then_parked_and_the_others_keep_flowing(
    world: tuple,
) -> None:
    """An event of a type no fold knows, written around the API: delivered ``MAX_DELIVERIES``
    times, then parked with its error; its story stays at the version before it; the other
    stories' projection lag stays under 1 s throughout."""
    url, client, store = world
    heads = await fill(store, 3, 4)
    poison = await write_around_the_api(client, store, "p-0", "entry.exploded", {"boom": True})
    consumers = Consumers(url, lambda: Projector(client, store), "poisoned", claim_idle_ms=CLAIM_MS)
    await consumers.start()
    try:
        waiting = asyncio.ensure_future(wait_parked(client, "p-0"))
        worst = await lag_while(client, store, ["p-1", "p-2"], waiting.done)
        letter = await waiting
        print(f"\nother stories' projection lag while p-0 was retried and parked: {worst:.3f} s")
        assert worst < 1.0
        with pytest.raises(InvalidState, match="cannot fold"):  # no sound decision: refused
            await store.append("p-0", parse_command("entry.published", LATER), actor="e:a")
        assert (await store.head("p-0"))[0] == poison  # nothing appended
        behind = await write_around_the_api(client, store, "p-0", "entry.published", LATER)
        await asyncio.sleep(1.0)  # held behind the parked event, and acknowledged
    finally:
        await consumers.stop()
    assert letter["version"] == poison
    assert letter["type"] == "entry.exploded"
    assert letter["deliveries"] == parked.MAX_DELIVERIES
    assert "no fold for event type 'entry.exploded'" in str(letter["error"])
    assert await ReadModel(client).version("p-0") == heads["p-0"]  # the version before it
    dead = await client.xrange(keys.dead(keys.partition("p-0")))
    assert [orjson.loads(fields[b"letter"])["version"] for _, fields in dead] == [poison]
    assert (await client.xpending(keys.feed_of("p-0"), GROUP))["pending"] == 0  # v{behind} too
    assert behind == poison + 1
    for story in ("p-1", "p-2"):
        await assert_state_is_a_fresh_fold(client, store, story)


async def test_a_feed_entry_without_an_envelope_is_parked_and_the_reader_goes_on(
    world: tuple,
) -> None:
    url, client, store = world
    heads = await fill(store, 2, 4)
    await client.xadd(keys.feed_of("p-0"), {"s": "p-0", "v": "99", "__data__": b"not json"})
    consumers = Consumers(url, lambda: Projector(client, store), "garbled", claim_idle_ms=CLAIM_MS)
    await consumers.start()
    try:
        letter = await wait_parked(client, "p-0")
        await wait_projected(client, heads)
        more = {"body": "<p>More</p>", "entry_id": "more"}
        await store.append("p-1", parse_command("entry.published", more), actor="e:a")
        await wait_projected(client, {"p-1": heads["p-1"] + 1})
    finally:
        await consumers.stop()
    assert letter["version"] == 99
    assert "holds no envelope" in str(letter["error"])


async def test_a_parked_story_catches_up_whole_after_a_fix_and_a_retry(
    world: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A projector bug on one event of a story (the fold raises on it) parks the story; events
    appended meanwhile are held. Once the bug is fixed (a deploy) ``retry`` folds the story
    from where it stopped, and it ends as a fresh fold of the whole record."""
    url, client, store = world
    heads = await fill(store, 2, 4)
    bad_version = heads["p-0"] + 1
    real_step = changes.step
    fixed = False

    def buggy(view: changes.View, envelope: Envelope) -> Any:
        if not fixed and envelope.story == "p-0" and envelope.version == bad_version:
            raise ValueError("a bug in the fold")
        return real_step(view, envelope)

    monkeypatch.setattr("services.projector.fold.step", buggy)
    consumers = Consumers(url, lambda: Projector(client, store), "buggy", claim_idle_ms=CLAIM_MS)
    await consumers.start()
    try:
        await wait_projected(client, heads)
        for n in range(3):  # the event the bug trips on, and two behind it
            data = {"body": f"<p>Late {n}</p>", "entry_id": f"late{n}"}
            await store.append("p-0", parse_command("entry.published", data), actor="e:a")
        letter = await wait_parked(client, "p-0")
        assert letter["version"] == bad_version
        assert await ReadModel(client).version("p-0") == heads["p-0"]
        fixed = True
        assert (await parking.retry(client, "p-0"))["version"] == bad_version
        await wait_projected(client, {"p-0": heads["p-0"] + 3})
    finally:
        await consumers.stop()
    assert await parking.parked(client) == []
    await assert_state_is_a_fresh_fold(client, store, "p-0")
