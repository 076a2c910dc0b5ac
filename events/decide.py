"""From a request's ``{type, data}`` to a decided event: the one entry point of the write path.

``parse_command`` validates the request against the command schema of its type (``InvalidEvent``
naming each refused field); ``decide`` runs that type's decision against the story's facts.
``payload`` turns a stored envelope's ``data`` back into its typed event model for the folds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pydantic import JsonValue, ValidationError

from events import embeds, entries, story
from events.base import Command, EventData
from events.chain import Envelope
from events.errors import InvalidEvent
from events.facts import StoryFacts
from events.stamp import Stamp

Decision = Callable[[StoryFacts, Any, Stamp], Any]

COMMANDS: dict[str, tuple[type[Command], Decision]] = {
    "story.opened": (story.OpenStory, story.open_story),
    "story.updated": (story.UpdateStory, story.update_story),
    "story.closed": (story.CloseStory, story.close_story),
    "entry.published": (entries.PublishEntry, entries.publish_entry),
    "entry.edited": (entries.EditEntry, entries.edit_entry),
    "entry.corrected": (entries.CorrectEntry, entries.correct_entry),
    "entry.retracted": (entries.RetractEntry, entries.retract_entry),
    "entry.pinned": (entries.PinEntry, entries.pin_entry),
    "entry.unpinned": (entries.UnpinEntry, entries.unpin_entry),
    "embed.attached": (embeds.AttachEmbed, embeds.attach_embed),
    "embed.removed": (embeds.RemoveEmbed, embeds.remove_embed),
}
"""Every event type the contract names, with its command schema and decision."""

_EVENT_MODELS: tuple[type[EventData], ...] = (
    story.StoryOpened,
    story.StoryUpdated,
    story.StoryClosed,
    entries.EntryPublished,
    entries.EntryEdited,
    entries.EntryCorrected,
    entries.EntryRetracted,
    entries.EntryPinned,
    entries.EntryUnpinned,
    embeds.EmbedAttached,
    embeds.EmbedRemoved,
)
EVENTS: dict[str, type[EventData]] = {cls.TYPE: cls for cls in _EVENT_MODELS}
"""Event type -> the model of its stored ``data``."""


def validation_details(error: ValidationError) -> list[JsonValue]:
    """Pydantic's errors as the contract's ``details``: where, and what was wrong."""
    return [
        {"field": ".".join(str(p) for p in err["loc"]), "problem": err["msg"]}
        for err in error.errors(include_url=False, include_input=False)
    ]


def parse_command(event_type: object, data: object) -> Command:
    """Validate a request's ``type`` and ``data`` into its command, or refuse with 422."""
    if not isinstance(event_type, str) or event_type not in COMMANDS:
        raise InvalidEvent(
            f"unknown event type {event_type!r}",
            {"field": "type", "allowed": list(sorted(COMMANDS))},
        )
    if event_type == "story.opened":
        raise InvalidEvent(
            "story.opened is only appended by POST /stories, as version 1",
            {"field": "type", "refused": [event_type]},
        )
    if not isinstance(data, dict):
        raise InvalidEvent("data must be a JSON object", {"field": "data"})
    schema = COMMANDS[event_type][0]
    try:
        return schema.model_validate(data)
    except ValidationError as error:
        raise InvalidEvent(
            f"invalid data for {event_type}", {"errors": validation_details(error)}
        ) from None


def parse_open(body: Mapping[str, object]) -> story.OpenStory:
    """Validate a ``POST /stories`` body."""
    try:
        return story.OpenStory.model_validate(body)
    except ValidationError as error:
        raise InvalidEvent("invalid story.opened", {"errors": validation_details(error)}) from None


def decide(facts: StoryFacts, command: Command, stamp: Stamp) -> EventData:
    """Run the decision for ``command``'s type: the event to append, or the error why not."""
    event: EventData = COMMANDS[command.TYPE][1](facts, command, stamp)
    return event


def payload(envelope: Envelope) -> EventData:
    """The typed event model of a stored envelope's ``data``."""
    return EVENTS[envelope.type].model_validate(envelope.data)
