"""The fold shell on the real server: exactly-once folding, gaps read from the record, the
changes streams holding each change exactly as the pure fold makes it."""

from __future__ import annotations

import orjson
import redis.asyncio as redis

from events.decide import parse_command, parse_open
from projections.changes import View, step
from projections.story import StoryState
from services.projector.fold import Projector
from services.realtime.frames import changes_of
from services.store import keys
from services.store.keys import CHANGES_KEPT
from services.store.readmodel import ReadModel
from tests.services.projector.conftest import assert_state_is_a_fresh_fold, fill


async def test_a_redelivered_batch_is_skipped(world: tuple) -> None:
    """Folding the same events twice changes nothing the second time."""
    _, client, store = world
    heads = await fill(store, 2, 5)
    envelopes = [e for s in heads for e in await store.read(s)]
    projector = Projector(client, store)
    await projector.project(envelopes)
    before = await ReadModel(client).story("p-0", 500, None)
    await projector.project(envelopes)
    assert projector.skipped == len(envelopes)
    assert projector.applied == len(envelopes)
    assert await ReadModel(client).story("p-0", 500, None) == before


async def test_a_gap_is_read_from_the_record(world: tuple) -> None:
    """Given only the tail of a story, the projector reads the events before it and folds all."""
    _, client, store = world
    await fill(store, 1, 8)
    events = await store.read("p-0")
    await Projector(client, store).project(events[5:])
    await assert_state_is_a_fresh_fold(client, store, "p-0")


async def kept_changes(client: redis.Redis, story: str) -> list[tuple[int, bytes]]:
    return [c for _, f in await client.xrange(keys.changes(story)) for c in changes_of(f)]


async def test_the_changes_stream_keeps_the_last_changes_each_written_once(world: tuple) -> None:
    """Batch after batch, a story's changes stream holds at least its last ``CHANGES_KEPT``
    changes, consecutive up to the head, each exactly the frame its fold makes; rebuilding the
    state from the record writes none of them again."""
    _, client, store = world
    await store.append("long", parse_open({"story": "long", "title": "Long"}), actor="editor:a")
    for i in range(CHANGES_KEPT + 150):
        data = {"body": f"<p>{i}</p>", "entry_id": f"e{i}"}
        await store.append("long", parse_command("entry.published", data), actor="editor:a")
    record = await store.read("long")
    projector = Projector(client, store)
    for at in range(0, len(record), 100):
        await projector.project(record[at : at + 100])
    kept = await kept_changes(client, "long")
    versions = [v for v, _ in kept]
    assert versions == list(range(versions[0], len(record) + 1))
    assert len(versions) >= CHANGES_KEPT
    assert versions[0] > 1  # and older ones go: the stream does not grow with the story
    view, frames = View(StoryState("long")), {}
    for envelope in record:
        view, change = step(view, envelope)
        frames[envelope.version] = orjson.dumps(change)
    assert all(change == frames[v] for v, change in kept)
    await client.delete(keys.meta("long"), keys.entries("long"), keys.order("long"))
    await Projector(client, store).project(record)  # rebuilt from the record, in one run
    assert await kept_changes(client, "long") == kept
    await assert_state_is_a_fresh_fold(client, store, "long")
