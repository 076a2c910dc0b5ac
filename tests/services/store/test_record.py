"""The record: atomic, gap-free, hash-chained appends on the real server."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime

import pytest

from events.chain import GENESIS, verify
from events.decide import parse_command, parse_open
from events.errors import IdempotencyKeyReused, UnknownStory, VersionConflict
from services.store import keys
from services.store.record import Keyed, Store


def publish(body: str = "<p>Update</p>", **data: object) -> object:
    return parse_command("entry.published", {"body": body, **data})


async def test_concurrent_writers_never_get_the_same_version(redis_url: str, story_id: str) -> None:
    """8 writers x 200 appends, each with its own connection and memory: versions 1..1601, no gap."""
    stores = [Store.from_url(redis_url) for _ in range(8)]
    await stores[0].append(
        story_id, parse_open({"story": story_id, "title": "Race"}), actor="editor:a"
    )

    async def writer(store: Store, n: int) -> None:
        for i in range(200):
            await store.append(story_id, publish(f"<p>{n}-{i}</p>"), actor=f"editor:w{n}")

    await asyncio.gather(*(writer(s, n) for n, s in enumerate(stores)))
    events = await stores[0].read(story_id)
    assert [e.version for e in events] == list(range(1, 1602))
    assert verify(events).ok
    bodies = [e.data["body"] for e in events[1:]]
    assert len(set(bodies)) == 1600  # every append landed exactly once
    for s in stores:
        await s.close()


async def test_the_first_event_links_to_64_zeros(store: Store, story_id: str) -> None:
    """Version 1's prev_hash is the genesis hash, and the head records the last hash."""
    done = await store.append(
        story_id, parse_open({"story": story_id, "title": "T"}), actor="admin:x"
    )
    assert done.envelope is not None
    assert done.envelope.prev_hash == GENESIS
    assert await store.head(story_id) == (1, done.envelope.hash)


async def test_events_are_stored_at_their_version(
    store: Store, client: object, story_id: str
) -> None:
    """Each stream entry id is ``<version>-0`` and carries the envelope format version."""
    await store.append(story_id, parse_open({"story": story_id, "title": "T"}), actor="admin:x")
    await store.append(story_id, publish(), actor="admin:x")
    rows = await client.xrange(keys.events(story_id))  # type: ignore[attr-defined]  # redis-py types the async client loosely
    assert [r[0] for r in rows] == [b"1-0", b"2-0"]
    assert all(r[1][b"f"] == b"1" for r in rows)


async def test_an_append_to_a_missing_story_is_refused(store: Store, story_id: str) -> None:
    """Nothing can be appended to a story that was never opened."""
    with pytest.raises(UnknownStory):
        await store.append(story_id, publish(), actor="editor:a")
    assert await store.head(story_id) == (0, None)


async def test_a_stale_expected_version_is_refused_with_the_current_one(
    redis_url: str, story_id: str
) -> None:
    """Another process's append moves the head; expected_version then conflicts, naming it."""
    a, b = Store.from_url(redis_url), Store.from_url(redis_url)
    await a.append(story_id, parse_open({"story": story_id, "title": "T"}), actor="editor:a")
    await a.facts(story_id)
    await b.append(story_id, publish(), actor="editor:b")
    with pytest.raises(VersionConflict) as refused:
        await a.append(story_id, publish(), actor="editor:a", expected_version=1)
    assert refused.value.current_version == 2
    done = await a.append(story_id, publish(), actor="editor:a", expected_version=2)
    assert done.envelope is not None
    assert done.envelope.version == 3
    await a.close()
    await b.close()


async def test_a_stale_memory_catches_up_from_the_stream(redis_url: str, story_id: str) -> None:
    """A writer whose facts are behind decides again on the fresh head, never forking the chain."""
    a, b = Store.from_url(redis_url), Store.from_url(redis_url)
    await a.append(story_id, parse_open({"story": story_id, "title": "T"}), actor="editor:a")
    await a.append(story_id, publish(entry_id="one"), actor="editor:a")
    await b.append(
        story_id,
        parse_command("entry.retracted", {"entry_id": "one", "note": "wrong"}),
        actor="editor:b",
    )
    with pytest.raises(Exception, match="retracted"):
        await a.append(
            story_id, parse_command("entry.pinned", {"entry_id": "one"}), actor="editor:a"
        )
    assert verify(await a.read(story_id)).ok
    await a.close()
    await b.close()


async def test_a_repeated_keyed_request_appends_once(store: Store, story_id: str) -> None:
    """The same key and body returns the first answer, byte for byte, and appends nothing."""
    await store.append(story_id, parse_open({"story": story_id, "title": "T"}), actor="editor:a")
    body = {"type": "entry.published", "data": {"body": "<p>x</p>"}}
    keyed = Keyed.of("tokenhash", "k-1", "POST", f"/stories/{story_id}/events", body)
    first = await store.append(story_id, publish("<p>x</p>"), actor="editor:a", keyed=keyed)
    again = await store.append(story_id, publish("<p>x</p>"), actor="editor:a", keyed=keyed)
    assert again.replayed
    assert again.body == first.body
    assert (await store.head(story_id))[0] == 2


async def test_a_key_reused_for_another_request_is_refused(store: Store, story_id: str) -> None:
    """The same key with another body is refused, and nothing is appended."""
    await store.append(story_id, parse_open({"story": story_id, "title": "T"}), actor="editor:a")
    path = f"/stories/{story_id}/events"
    one = Keyed.of("tokenhash", "k-2", "POST", path, {"a": 1})
    other = Keyed.of("tokenhash", "k-2", "POST", path, {"a": 2})
    await store.append(story_id, publish(), actor="editor:a", keyed=one)
    with pytest.raises(IdempotencyKeyReused):
        await store.append(story_id, publish(), actor="editor:a", keyed=other)
    assert (await store.head(story_id))[0] == 2


async def test_appended_events_carry_a_v4_uuid_and_the_server_time(
    store: Store, story_id: str
) -> None:
    """Each envelope's ``id`` is a fresh v4 UUID in its canonical text, and its ``recorded_at`` is
    the server's UTC time with microseconds and ``Z``, never before the event before it."""
    before = datetime.now(UTC)
    await store.append(story_id, parse_open({"story": story_id, "title": "T"}), actor="editor:a")
    for n in range(20):
        data = {"body": f"<p>{n}</p>"}
        await store.append(story_id, parse_command("entry.published", data), actor="editor:a")
    after = datetime.now(UTC)
    envelopes = await store.read(story_id)
    assert len({e.id for e in envelopes}) == len(envelopes)
    for envelope in envelopes:
        parsed = uuid.UUID(envelope.id)
        assert str(parsed) == envelope.id
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", envelope.recorded_at)
        assert before <= datetime.fromisoformat(envelope.recorded_at) <= after
    times = [e.recorded_at for e in envelopes]
    assert times == sorted(times)
