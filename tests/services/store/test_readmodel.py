"""The read model on the real server: versions, pages and the list of stories as projected."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis

from events.decide import parse_command, parse_open
from events.errors import ProjectionLagging, UnknownStory
from services.projector.fold import Projector
from services.store.readmodel import ReadModel
from services.store.record import Store


@pytest.fixture
async def own(isolated_url: str) -> AsyncIterator[tuple[redis.Redis, Store]]:
    """A database of its own (no other projector folds it), a client and a store on it."""
    client = redis.Redis.from_url(isolated_url)
    yield client, Store(client)
    await client.aclose()


async def open_and_project(client: redis.Redis, store: Store, story: str, entries: int) -> None:
    await store.append(
        story, parse_open({"story": story, "title": story.upper()}), actor="editor:a"
    )
    for n in range(entries):
        data = {"body": f"<p>{n}</p>"}
        await store.append(story, parse_command("entry.published", data), actor="editor:a")
    await Projector(client, store).project(await store.read(story))


async def test_the_version_of_an_unknown_story_is_zero(own: tuple[redis.Redis, Store]) -> None:
    """A story the projector has not seen is at version 0."""
    client, _ = own
    assert await ReadModel(client).version("never-opened") == 0


async def test_a_projected_story_is_read_at_its_version(own: tuple[redis.Redis, Store]) -> None:
    """Once projected, the story's version is its head and its page holds its entries."""
    client, store = own
    await open_and_project(client, store, "r", 3)
    reads = ReadModel(client)
    assert await reads.version("r") == 4
    assert await reads.wait_for("r", 4) == 4
    state = await reads.story("r", 50, None)
    assert state["version"] == 4
    assert isinstance(state["entries"], list)
    assert len(state["entries"]) == 3


async def test_reading_an_unknown_story_is_unknown_story(own: tuple[redis.Redis, Store]) -> None:
    """A page of a story that does not exist is UnknownStory (404 on the API)."""
    client, _ = own
    with pytest.raises(UnknownStory):
        await ReadModel(client).story("never-opened", 50, None)


async def test_waiting_for_a_version_not_reached_is_projection_lagging(
    own: tuple[redis.Redis, Store],
) -> None:
    """After the timeout, wait_for says where the projection is and what was asked for."""
    client, store = own
    await open_and_project(client, store, "w", 1)
    with pytest.raises(ProjectionLagging) as lagging:
        await ReadModel(client).wait_for("w", 5, timeout=0.05)
    assert lagging.value.details == {"projected_version": 2, "min_version": 5}


async def test_stories_are_listed_newest_activity_first(own: tuple[redis.Redis, Store]) -> None:
    """The story written to last comes first, with its title, status and version."""
    client, store = own
    for story in ("first", "second", "third"):
        await open_and_project(client, store, story, 0)
    await store.append(
        "first", parse_command("entry.published", {"body": "<p>x</p>"}), actor="editor:a"
    )
    await Projector(client, store).project(await store.read("first"))
    listed = await ReadModel(client).stories()
    rows = [row for row in listed if isinstance(row, dict)]
    assert [row["story"] for row in rows] == ["first", "third", "second"]
    assert (rows[0]["title"], rows[0]["status"], rows[0]["version"]) == ("FIRST", "live", 2)


async def test_a_page_read_while_the_projector_writes_never_mixes_two_versions(
    own: tuple[redis.Redis, Store],
) -> None:
    """Each edit names the version it lands at; a page read at any moment of a stream of edits
    shows the entry as it was at the page's own version, never one edit later (a page labelled
    V is what a reader at V was shown: the meta and the entries are read in one atomic step)."""
    client, store = own
    await store.append("m", parse_open({"story": "m", "title": "M"}), actor="editor:a")
    await store.append(
        "m", parse_command("entry.published", {"body": "<p>2</p>", "entry_id": "e"}), actor="x"
    )
    projector = Projector(client, store)
    await projector.project(await store.read("m"))
    reads = ReadModel(client)
    done = asyncio.Event()
    seen: list[tuple[int, str]] = []

    async def reader() -> None:
        while not done.is_set():
            state = await reads.story("m", 50, None)
            entries = state["entries"]
            assert isinstance(entries, list)
            entry = entries[0]
            assert isinstance(entry, dict)
            seen.append((int(str(state["version"])), str(entry["body"])))

    async def writer() -> None:
        for version in range(3, 83):
            data = {"entry_id": "e", "body": f"<p>{version}</p>"}
            await store.append("m", parse_command("entry.edited", data), actor="editor:a")
            await projector.project(await store.read("m", from_version=version))
        done.set()

    await asyncio.gather(reader(), writer())
    assert len(seen) > 80
    assert [(v, b) for v, b in seen if b != f"<p>{v}</p>"] == []
