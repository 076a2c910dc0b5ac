"""Entries: publish, edit, correct, retract, pin, unpin (CONTRACT.md "Event types").

Rules (with the error each breach raises):
- a story must exist (``UnknownStory``); a closed story takes no new entries (``StoryClosed``), but
  edits, corrections, retractions, pins and embeds still land;
- an entry id is unused in its story (``EntryExists``);
- an entry referred to must exist (``UnknownEntry``) and, to be edited, corrected, retracted again,
  pinned or given an embed, must not be retracted (``InvalidState``);
- at most one entry is pinned; pinning another moves the pin; unpinning needs that entry pinned
  (``InvalidState``);
- bodies are the contract's safe HTML subset, checked by ``events.html`` (``InvalidEvent``).
"""

from __future__ import annotations

from events.base import Command, EventData
from events.errors import ClosedStory, EntryExists, InvalidEvent, InvalidState, UnknownEntry
from events.facts import EntryFacts, StoryFacts
from events.html import refused_html
from events.ids import Id
from events.stamp import Stamp
from events.story import require_story
from events.text import Body, Headline, Note, TimeLabel


class PublishEntry(Command):
    TYPE = "entry.published"
    entry_id: Id | None = None
    body: Body
    headline: Headline | None = None
    key_event: bool = False
    time_label: TimeLabel | None = None


class EditEntry(Command):
    TYPE = "entry.edited"
    entry_id: Id
    body: Body
    headline: Headline | None = None


class CorrectEntry(Command):
    TYPE = "entry.corrected"
    entry_id: Id
    body: Body
    note: Note


class RetractEntry(Command):
    TYPE = "entry.retracted"
    entry_id: Id
    note: Note


class PinEntry(Command):
    TYPE = "entry.pinned"
    entry_id: Id


class UnpinEntry(Command):
    TYPE = "entry.unpinned"
    entry_id: Id


class EntryPublished(EventData):
    TYPE = "entry.published"
    entry_id: str
    body: str
    headline: str | None = None
    key_event: bool = False
    time_label: str | None = None


class EntryEdited(EventData):
    TYPE = "entry.edited"
    entry_id: str
    body: str
    headline: str | None = None


class EntryCorrected(EventData):
    TYPE = "entry.corrected"
    entry_id: str
    body: str
    note: str


class EntryRetracted(EventData):
    TYPE = "entry.retracted"
    entry_id: str
    note: str


class EntryPinned(EventData):
    TYPE = "entry.pinned"
    entry_id: str


class EntryUnpinned(EventData):
    TYPE = "entry.unpinned"
    entry_id: str


def check_body(body: str) -> None:
    """Refuse a body outside the safe HTML subset, naming everything refused."""
    refused = refused_html(body)
    if refused:
        raise InvalidEvent(
            "body contains HTML outside the allowed subset: " + ", ".join(refused),
            {"field": "body", "refused": list(refused)},
        )


def live_entry(story: StoryFacts, entry_id: str, doing: str) -> EntryFacts:
    """The entry ``entry_id``, which must exist and not be retracted."""
    require_story(story)
    entry = story.entries.get(entry_id)
    if entry is None:
        raise UnknownEntry(f"entry {entry_id!r} does not exist in story {story.story!r}")
    if entry.status == "retracted":
        raise InvalidState(f"entry {entry_id!r} is retracted: it cannot be {doing}")
    return entry


def publish_entry(story: StoryFacts, command: PublishEntry, stamp: Stamp) -> EntryPublished:
    """A new entry on a live story, with the tool's id or a fresh one."""
    require_story(story)
    if story.status == "closed":
        raise ClosedStory(f"story {story.story!r} is closed: it takes no new entries")
    entry_id = command.entry_id or stamp.new_id
    if entry_id in story.entries:
        raise EntryExists(f"entry {entry_id!r} already exists in story {story.story!r}")
    check_body(command.body)
    return EntryPublished(
        entry_id=entry_id,
        body=command.body,
        headline=command.headline,
        key_event=command.key_event,
        time_label=command.time_label,
    )


def edit_entry(story: StoryFacts, command: EditEntry, stamp: Stamp) -> EntryEdited:
    """A silent fix: readers see no note, auditors see the event."""
    live_entry(story, command.entry_id, "edited")
    check_body(command.body)
    return EntryEdited(entry_id=command.entry_id, body=command.body, headline=command.headline)


def correct_entry(story: StoryFacts, command: CorrectEntry, stamp: Stamp) -> EntryCorrected:
    """A correction readers see, with its note."""
    live_entry(story, command.entry_id, "corrected")
    check_body(command.body)
    return EntryCorrected(entry_id=command.entry_id, body=command.body, note=command.note)


def retract_entry(story: StoryFacts, command: RetractEntry, stamp: Stamp) -> EntryRetracted:
    """Withdraw an entry: readers see a tombstone with the note."""
    live_entry(story, command.entry_id, "retracted again")
    return EntryRetracted(entry_id=command.entry_id, note=command.note)


def pin_entry(story: StoryFacts, command: PinEntry, stamp: Stamp) -> EntryPinned:
    """Pin an entry to the top; pinning another moves the pin."""
    live_entry(story, command.entry_id, "pinned")
    return EntryPinned(entry_id=command.entry_id)


def unpin_entry(story: StoryFacts, command: UnpinEntry, stamp: Stamp) -> EntryUnpinned:
    """Unpin the pinned entry."""
    require_story(story)
    if command.entry_id not in story.entries:
        raise UnknownEntry(f"entry {command.entry_id!r} does not exist in story {story.story!r}")
    if story.pinned != command.entry_id:
        raise InvalidState(f"entry {command.entry_id!r} is not pinned")
    return EntryUnpinned(entry_id=command.entry_id)
