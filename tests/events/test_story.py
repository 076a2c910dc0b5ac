"""Story lifecycle decisions: open once, update, close (CONTRACT.md "Event types")."""

from __future__ import annotations

import pytest
from pydantic import JsonValue

from events.decide import parse_open
from events.errors import ClosedStory, InvalidEvent, StoryExists, UnknownStory
from events.facts import StoryFacts
from events.story import OpenStory, UpdateStory, open_story, update_story
from tests.strategies import Newsroom, opened, refused, refused_fields, stamp


def test_opening_a_story_records_only_the_fields_given() -> None:
    """story.opened carries the title and what else was sent; absent fields are absent, not null."""
    room = Newsroom()
    envelope = room.open(title="Syria Daily", summary="Live from Aleppo")
    assert (envelope.version, envelope.type) == (1, "story.opened")
    assert envelope.data == {"title": "Syria Daily", "summary": "Live from Aleppo"}
    assert Newsroom("other").open(title="Other").data == {"title": "Other"}
    assert room.facts.status == "live"


def test_opening_an_existing_story_is_refused() -> None:
    """POST /stories for a story that has events is 409 story_exists."""
    room = opened()
    with pytest.raises(StoryExists) as caught:
        open_story(room.facts, OpenStory(story=room.story, title="Again"), stamp(2))
    assert (caught.value.status, caught.value.code) == (409, "story_exists")
    assert len(room.envelopes) == 1


def test_opening_a_closed_story_again_is_refused() -> None:
    """A closed story still exists: it cannot be opened afresh."""
    room = opened()
    room.command("story.closed")
    with pytest.raises(StoryExists):
        room.open(title="Again")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"story": "syria-daily"}, "title"),
        ({"story": "syria-daily", "title": ""}, "title"),
        ({"story": "syria-daily", "title": "t" * 301}, "title"),
        ({"story": "Syria", "title": "Syria"}, "story"),
        ({"title": "Syria"}, "story"),
        ({"story": "syria-daily", "title": "Syria", "owner": "jane"}, "owner"),
        ({"story": "syria-daily", "title": "Syria\x1b[31m"}, "title"),
        ({"story": "syria-daily", "title": "Syria", "summary": 3}, "summary"),
    ],
)
def test_an_invalid_open_body_is_refused_by_name(body: dict[str, JsonValue], field: str) -> None:
    """POST /stories validates its body like an event's data: invalid_event naming the field."""
    with pytest.raises(InvalidEvent) as caught:
        parse_open(body)
    assert refused_fields(caught.value) == [field]


def test_updating_a_story_changes_only_what_is_sent() -> None:
    """story.updated stores the fields sent, nothing else."""
    room = opened()
    assert room.command("story.updated", summary="Now with maps").data == {
        "summary": "Now with maps"
    }


def test_updating_a_story_with_neither_title_nor_summary_is_refused() -> None:
    """An update that changes nothing is invalid_event naming both fields it could have had."""
    room = opened()
    with pytest.raises(InvalidEvent) as caught:
        update_story(room.facts, UpdateStory(), stamp(2))
    assert caught.value.details == {"fields": ["title", "summary"]}


def test_a_closed_story_can_still_be_updated() -> None:
    """Closing ends new entries, not the story's title and summary."""
    room = opened()
    room.command("story.closed", note="Coverage ended")
    assert room.command("story.updated", title="Syria Daily (archive)").version == 3


def test_closing_a_closed_story_is_refused() -> None:
    """A story closes once: the second close is 409 story_closed."""
    room = opened()
    room.command("story.closed")
    error = refused(room, "story.closed", note="again")
    assert isinstance(error, ClosedStory)
    assert (error.status, error.code) == (409, "story_closed")


@pytest.mark.parametrize(
    ("event_type", "data"),
    [
        ("story.updated", {"title": "x"}),
        ("story.closed", {}),
        ("entry.published", {"body": "<p>x</p>"}),
        ("entry.edited", {"entry_id": "a", "body": "<p>x</p>"}),
        ("entry.corrected", {"entry_id": "a", "body": "<p>x</p>", "note": "n"}),
        ("entry.retracted", {"entry_id": "a", "note": "n"}),
        ("entry.pinned", {"entry_id": "a"}),
        ("entry.unpinned", {"entry_id": "a"}),
        ("embed.attached", {"entry_id": "a", "kind": "link", "url": "https://example.org/"}),
        ("embed.removed", {"entry_id": "a", "embed_id": "b"}),
    ],
)
def test_every_event_on_a_story_never_opened_is_unknown_story(
    event_type: str, data: dict[str, JsonValue]
) -> None:
    """Only story.opened may come first; anything else on an absent story is 404 unknown_story."""
    room = Newsroom("never-opened")
    error = refused(room, event_type, **data)
    assert isinstance(error, UnknownStory)
    assert (error.status, error.code) == (404, "unknown_story")
    assert room.facts == StoryFacts("never-opened")
