"""Story lifecycle: open, update, close (CONTRACT.md "Event types")."""

from __future__ import annotations

from events.base import Command, EventData
from events.errors import ClosedStory, InvalidEvent, StoryExists, UnknownStory
from events.facts import StoryFacts
from events.ids import Id
from events.stamp import Stamp
from events.text import Note, Summary, TimeLabel, Title


class OpenStory(Command):
    TYPE = "story.opened"
    story: Id
    title: Title
    summary: Summary | None = None
    coverage_start: TimeLabel | None = None


class UpdateStory(Command):
    TYPE = "story.updated"
    title: Title | None = None
    summary: Summary | None = None


class CloseStory(Command):
    TYPE = "story.closed"
    note: Note | None = None


class StoryOpened(EventData):
    TYPE = "story.opened"
    title: str
    summary: str | None = None
    coverage_start: str | None = None


class StoryUpdated(EventData):
    TYPE = "story.updated"
    title: str | None = None
    summary: str | None = None


class StoryClosed(EventData):
    TYPE = "story.closed"
    note: str | None = None


def require_story(story: StoryFacts) -> None:
    """Refuse any event but ``story.opened`` on a story that was never opened."""
    if not story.exists:
        raise UnknownStory(f"story {story.story!r} does not exist")


def open_story(story: StoryFacts, command: OpenStory, stamp: Stamp) -> StoryOpened:
    """``story.opened`` is only ever version 1."""
    if story.exists:
        raise StoryExists(f"story {story.story!r} already exists")
    return StoryOpened(
        title=command.title, summary=command.summary, coverage_start=command.coverage_start
    )


def update_story(story: StoryFacts, command: UpdateStory, stamp: Stamp) -> StoryUpdated:
    """Change the title or summary; at least one of them."""
    require_story(story)
    if command.title is None and command.summary is None:
        raise InvalidEvent(
            "story.updated needs a title or a summary", {"fields": ["title", "summary"]}
        )
    return StoryUpdated(title=command.title, summary=command.summary)


def close_story(story: StoryFacts, command: CloseStory, stamp: Stamp) -> StoryClosed:
    """Close a live story: it takes no new entries afterwards."""
    require_story(story)
    if story.status == "closed":
        raise ClosedStory(f"story {story.story!r} is already closed")
    return StoryClosed(note=command.note)
