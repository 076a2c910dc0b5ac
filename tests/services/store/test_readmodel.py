"""The read model on the real server: versions, pages and the list of stories as projected."""

from __future__ import annotations

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
