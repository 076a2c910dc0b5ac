"""The write path's entry point: ``parse_command`` refuses what the schema does not allow (422
``invalid_event``, naming the field), ``decide`` runs the type's decision, ``payload`` reads stored
data back."""

from __future__ import annotations

import pytest
from hypothesis import given
from pydantic import JsonValue

from events.chain import Envelope
from events.decide import COMMANDS, EVENTS, decide, parse_command, parse_open, payload
from events.entries import EntryPublished, PublishEntry
from events.errors import InvalidEvent, UnknownStory
from events.facts import StoryFacts
from tests.strategies import PROPERTIES, Newsroom, histories, refused_fields, stamp

CONTRACT_TYPES = {
    "story.opened",
    "story.updated",
    "story.closed",
    "entry.published",
    "entry.edited",
    "entry.corrected",
    "entry.retracted",
    "entry.pinned",
    "entry.unpinned",
    "embed.attached",
    "embed.removed",
}


def test_every_contract_event_type_has_a_schema_a_decision_and_a_stored_model() -> None:
    """The registry knows exactly the contract's eleven event types, in both directions."""
    assert set(COMMANDS) == CONTRACT_TYPES
    assert set(EVENTS) == CONTRACT_TYPES
    assert all(name == schema.TYPE for name, (schema, _) in COMMANDS.items())


@pytest.mark.parametrize("event_type", ["entry.deleted", "Entry.Published", "", None, 7])
def test_an_unknown_event_type_is_refused_naming_the_type_field(event_type: object) -> None:
    """A type the contract does not list is invalid_event, details naming "type"."""
    with pytest.raises(InvalidEvent) as caught:
        parse_command(event_type, {"body": "<p>x</p>"})
    assert caught.value.status == 422
    assert caught.value.code == "invalid_event"
    assert refused_fields(caught.value) == ["type"]


def test_story_opened_is_refused_as_an_event() -> None:
    """A second story.opened through the events endpoint is invalid_event (only POST /stories)."""
    with pytest.raises(InvalidEvent) as caught:
        parse_command("story.opened", {"title": "Again"})
    assert caught.value.code == "invalid_event"
    assert refused_fields(caught.value) == ["type"]


@pytest.mark.parametrize("data", [None, [], "body", 3])
def test_data_that_is_not_an_object_is_refused(data: object) -> None:
    """``data`` must be a JSON object."""
    with pytest.raises(InvalidEvent) as caught:
        parse_command("entry.published", data)
    assert refused_fields(caught.value) == ["data"]


@pytest.mark.parametrize(
    ("event_type", "data", "field"),
    [
        ("entry.published", {"body": "<p>x</p>", "author": "jane"}, "author"),
        ("entry.published", {"body": "<p>x</p>", "entry_id": "a", "story": "s"}, "story"),
        ("entry.pinned", {"entry_id": "a", "until": "tomorrow"}, "until"),
        ("story.closed", {"note": "Over", "reason": "done"}, "reason"),
        ("embed.removed", {"entry_id": "a", "embed_id": "b", "kind": "video"}, "kind"),
    ],
)
def test_an_extra_field_is_refused_by_name(
    event_type: str, data: dict[str, JsonValue], field: str
) -> None:
    """A field the event type does not have is refused, not ignored."""
    with pytest.raises(InvalidEvent) as caught:
        parse_command(event_type, data)
    assert refused_fields(caught.value) == [field]


@pytest.mark.parametrize(
    ("event_type", "data", "field"),
    [
        ("entry.published", {"body": "<p>x</p>", "key_event": "yes"}, "key_event"),
        ("entry.published", {"body": "<p>x</p>", "key_event": 1}, "key_event"),
        ("entry.published", {"body": 42}, "body"),
        ("entry.published", {"body": None}, "body"),
        ("entry.published", {"body": "<p>x</p>", "entry_id": 5}, "entry_id"),
        ("entry.published", {"body": "<p>x</p>", "headline": ["a"]}, "headline"),
        ("entry.published", {"body": "<p>x</p>", "time_label": 1850}, "time_label"),
        ("entry.corrected", {"entry_id": "a", "body": "<p>x</p>", "note": {}}, "note"),
        ("embed.attached", {"entry_id": "a", "kind": "gif", "url": "https://x.org/a"}, "kind"),
        ("embed.attached", {"entry_id": "a", "kind": "image", "url": 7}, "url"),
        ("story.updated", {"title": ""}, "title"),
        ("story.updated", {"summary": False}, "summary"),
    ],
)
def test_a_mistyped_field_is_refused_by_name(
    event_type: str, data: dict[str, JsonValue], field: str
) -> None:
    """A field of the wrong type (no coercion: "yes" is not true) names that field."""
    with pytest.raises(InvalidEvent) as caught:
        parse_command(event_type, data)
    assert refused_fields(caught.value) == [field]


@pytest.mark.parametrize(
    ("event_type", "data", "missing"),
    [
        ("entry.published", {}, ["body"]),
        ("entry.edited", {"body": "<p>x</p>"}, ["entry_id"]),
        ("entry.corrected", {"entry_id": "a", "body": "<p>x</p>"}, ["note"]),
        ("entry.retracted", {"entry_id": "a"}, ["note"]),
        ("entry.unpinned", {}, ["entry_id"]),
        ("embed.attached", {"entry_id": "a"}, ["kind", "url"]),
        ("embed.removed", {"entry_id": "a"}, ["embed_id"]),
    ],
)
def test_a_missing_required_field_is_refused_by_name(
    event_type: str, data: dict[str, JsonValue], missing: list[str]
) -> None:
    """Each required field that is absent is named in details."""
    with pytest.raises(InvalidEvent) as caught:
        parse_command(event_type, data)
    assert sorted(refused_fields(caught.value)) == missing


@pytest.mark.parametrize(
    "entry_id", ["Upper", "-leading-dash", "under_score", "a" * 65, "abc\n", ""]
)
def test_an_entry_id_outside_the_pattern_is_refused(entry_id: str) -> None:
    """Ids match ``^[a-z0-9][a-z0-9-]{0,63}$``, with no trailing newline let through."""
    with pytest.raises(InvalidEvent) as caught:
        parse_command("entry.published", {"entry_id": entry_id, "body": "<p>x</p>"})
    assert refused_fields(caught.value) == ["entry_id"]


def test_the_longest_entry_id_is_accepted() -> None:
    """Sixty-four characters is the most an id may have."""
    command = parse_command("entry.published", {"entry_id": "a" * 64, "body": "<p>x</p>"})
    assert isinstance(command, PublishEntry)
    assert command.entry_id == "a" * 64


def test_a_refusal_becomes_the_contracts_error_body() -> None:
    """The API answers a refusal with ``{"error": {"code", "message", "details"}}``."""
    with pytest.raises(InvalidEvent) as caught:
        parse_command("entry.published", {"body": "<p>x</p>", "mood": "grim"})
    body = caught.value.to_body()
    assert set(body) == {"error"}
    error = body["error"]
    assert isinstance(error, dict)
    assert error["code"] == "invalid_event"
    assert isinstance(error["message"], str)
    assert error["message"]
    assert error["details"] == {
        "errors": [{"field": "mood", "problem": "Extra inputs are not permitted"}]
    }


def test_parse_open_refuses_a_bad_story_id_by_name() -> None:
    """``POST /stories`` with a story id outside the pattern names ``story``."""
    with pytest.raises(InvalidEvent) as caught:
        parse_open({"story": "Syria Daily", "title": "Syria"})
    assert refused_fields(caught.value) == ["story"]


def test_decide_runs_the_decision_of_the_commands_type() -> None:
    """A parsed publish decided on an open story is an entry.published with the stamp's id."""
    room = Newsroom()
    room.open(title="Syria Daily")
    command = parse_command("entry.published", {"body": "<p>Shelling reported</p>"})
    event = decide(room.facts, command, stamp(2))
    assert event == EntryPublished(entry_id="auto-2", body="<p>Shelling reported</p>")


def test_decide_on_a_story_never_opened_is_unknown_story() -> None:
    """Any event but story.opened needs the story to exist: 404 unknown_story."""
    command = parse_command("entry.published", {"body": "<p>x</p>"})
    with pytest.raises(UnknownStory) as caught:
        decide(StoryFacts("nowhere"), command, stamp(1))
    assert (caught.value.status, caught.value.code) == (404, "unknown_story")


@PROPERTIES
@given(histories())
def test_stored_data_reads_back_into_the_same_data(envelopes: list[Envelope]) -> None:
    """Every stored event's data is its model's data exactly: nothing added, nothing lost."""
    for envelope in envelopes:
        event = payload(envelope)
        assert envelope.type == event.TYPE
        assert event.to_data() == envelope.data
        assert None not in envelope.data.values()  # absent optional fields are absent, not null
