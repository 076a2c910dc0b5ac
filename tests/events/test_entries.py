"""Entry decisions: publish, edit, correct, retract, pin, unpin (CONTRACT.md "Event types" and
"Errors")."""

from __future__ import annotations

import pytest
from pydantic import JsonValue

from events.errors import (
    ClosedStory,
    EntryExists,
    InvalidEvent,
    InvalidState,
    UnknownEntry,
)
from tests.strategies import Newsroom, opened, refused, refused_fields


def test_publishing_keeps_the_tools_entry_id() -> None:
    """An entry id chosen by the newsroom tool is the entry's id."""
    room = opened()
    envelope = room.command("entry.published", entry_id="update-1850", body="<p>Shelling</p>")
    assert envelope.data["entry_id"] == "update-1850"
    assert "update-1850" in room.facts.entries


def test_publishing_without_an_id_stores_the_server_assigned_one() -> None:
    """Without entry_id the server assigns one, and data as stored carries it for replays."""
    room = opened()
    envelope = room.command("entry.published", body="<p>Shelling</p>")
    assert envelope.data == {"entry_id": "auto-2", "body": "<p>Shelling</p>", "key_event": False}


def test_publishing_stores_every_field_sent() -> None:
    """Headline, key_event and time_label are stored as sent."""
    room = opened()
    envelope = room.command(
        "entry.published",
        entry_id="e-1",
        body="<p>Ceasefire announced</p>",
        headline="Ceasefire",
        key_event=True,
        time_label="1850 GMT",
    )
    assert envelope.data == {
        "entry_id": "e-1",
        "body": "<p>Ceasefire announced</p>",
        "headline": "Ceasefire",
        "key_event": True,
        "time_label": "1850 GMT",
    }


def test_publishing_to_a_closed_story_is_refused() -> None:
    """A closed story takes no new entries: 409 story_closed, nothing appended."""
    room = opened("e-1")
    room.command("story.closed", note="Coverage has ended")
    error = refused(room, "entry.published", body="<p>Late news</p>")
    assert isinstance(error, ClosedStory)
    assert (error.status, error.code) == (409, "story_closed")


@pytest.mark.parametrize(
    ("event_type", "data"),
    [
        ("entry.edited", {"entry_id": "e-1", "body": "<p>Typo fixed</p>"}),
        ("entry.corrected", {"entry_id": "e-1", "body": "<p>Fixed</p>", "note": "Wrong town"}),
        ("entry.retracted", {"entry_id": "e-1", "note": "Unverified"}),
        ("entry.pinned", {"entry_id": "e-1"}),
        ("embed.attached", {"entry_id": "e-1", "kind": "image", "url": "https://example.org/a"}),
    ],
)
def test_a_closed_story_still_takes_changes_to_its_entries(
    event_type: str, data: dict[str, JsonValue]
) -> None:
    """Corrections, edits, retractions, pins and embeds still land on a closed story."""
    room = opened("e-1")
    room.command("story.closed")
    assert room.command(event_type, **data).version == 4


@pytest.mark.parametrize("retract_first", [False, True])
def test_publishing_an_entry_id_already_used_is_refused(retract_first: bool) -> None:
    """An entry id is used once per story, even after its entry was retracted: entry_exists."""
    room = opened("e-1")
    if retract_first:
        room.command("entry.retracted", entry_id="e-1", note="Unverified")
    error = refused(room, "entry.published", entry_id="e-1", body="<p>Again</p>")
    assert isinstance(error, EntryExists)
    assert (error.status, error.code) == (409, "entry_exists")


def test_the_same_entry_id_in_another_story_is_accepted() -> None:
    """Entry ids are scoped to their story."""
    opened("e-1")
    other = Newsroom("gaza-daily")
    other.open(title="Gaza Daily")
    assert other.command("entry.published", entry_id="e-1", body="<p>x</p>").version == 2


@pytest.mark.parametrize(
    ("event_type", "data"),
    [
        ("entry.edited", {"entry_id": "ghost", "body": "<p>x</p>"}),
        ("entry.corrected", {"entry_id": "ghost", "body": "<p>x</p>", "note": "n"}),
        ("entry.retracted", {"entry_id": "ghost", "note": "n"}),
        ("entry.pinned", {"entry_id": "ghost"}),
        ("entry.unpinned", {"entry_id": "ghost"}),
        ("embed.attached", {"entry_id": "ghost", "kind": "link", "url": "https://example.org/"}),
        ("embed.removed", {"entry_id": "ghost", "embed_id": "clip"}),
    ],
)
def test_acting_on_a_missing_entry_is_unknown_entry(
    event_type: str, data: dict[str, JsonValue]
) -> None:
    """An entry the story does not have is 404 unknown_entry, nothing appended."""
    error = refused(opened("e-1"), event_type, **data)
    assert isinstance(error, UnknownEntry)
    assert (error.status, error.code) == (404, "unknown_entry")


def test_correcting_a_retracted_entry_is_refused() -> None:
    """A retracted entry cannot be corrected: 409 invalid_state, nothing appended."""
    room = opened("e-1")
    room.command("entry.retracted", entry_id="e-1", note="Unverified")
    error = refused(
        room, "entry.corrected", entry_id="e-1", body="<p>Back</p>", note="Verified after all"
    )
    assert isinstance(error, InvalidState)
    assert (error.status, error.code) == (409, "invalid_state")


@pytest.mark.parametrize(
    ("event_type", "data"),
    [
        ("entry.edited", {"entry_id": "e-1", "body": "<p>x</p>"}),
        ("entry.retracted", {"entry_id": "e-1", "note": "Twice"}),
        ("entry.pinned", {"entry_id": "e-1"}),
        ("embed.attached", {"entry_id": "e-1", "kind": "link", "url": "https://example.org/"}),
    ],
)
def test_changing_a_retracted_entry_is_invalid_state(
    event_type: str, data: dict[str, JsonValue]
) -> None:
    """Editing, retracting again, pinning or embedding on a retracted entry: invalid_state."""
    room = opened("e-1")
    room.command("entry.retracted", entry_id="e-1", note="Unverified")
    error = refused(room, event_type, **data)
    assert isinstance(error, InvalidState)
    assert error.code == "invalid_state"


def test_pinning_a_missing_entry_is_refused() -> None:
    """Only an entry the story has can be pinned: unknown_entry."""
    error = refused(opened("e-1"), "entry.pinned", entry_id="e-9")
    assert isinstance(error, UnknownEntry)


def test_pinning_another_entry_moves_the_pin() -> None:
    """At most one entry is pinned; pinning a second one unpins the first."""
    room = opened("e-1", "e-2")
    room.command("entry.pinned", entry_id="e-1")
    room.command("entry.pinned", entry_id="e-2")
    assert room.facts.pinned == "e-2"
    error = refused(room, "entry.unpinned", entry_id="e-1")
    assert isinstance(error, InvalidState)


def test_unpinning_when_nothing_is_pinned_is_refused() -> None:
    """Unpinning needs a pinned entry: 409 invalid_state."""
    error = refused(opened("e-1"), "entry.unpinned", entry_id="e-1")
    assert isinstance(error, InvalidState)
    assert (error.status, error.code) == (409, "invalid_state")


def test_unpinning_the_pinned_entry_clears_the_pin() -> None:
    """entry.unpinned on the pinned entry leaves nothing pinned."""
    room = opened("e-1")
    room.command("entry.pinned", entry_id="e-1")
    room.command("entry.unpinned", entry_id="e-1")
    assert room.facts.pinned is None


def test_retracting_the_pinned_entry_takes_the_pin_away() -> None:
    """A tombstone is never pinned on top; afterwards there is nothing to unpin."""
    room = opened("e-1")
    room.command("entry.pinned", entry_id="e-1")
    room.command("entry.retracted", entry_id="e-1", note="Unverified")
    assert room.facts.pinned is None
    assert isinstance(refused(room, "entry.unpinned", entry_id="e-1"), InvalidState)


@pytest.mark.parametrize(
    ("event_type", "data", "field"),
    [
        ("entry.corrected", {"entry_id": "e-1", "body": "<p>x</p>", "note": ""}, "note"),
        ("entry.retracted", {"entry_id": "e-1", "note": ""}, "note"),
        ("entry.published", {"body": ""}, "body"),
        ("entry.published", {"body": "<p>x</p>", "headline": "h" * 301}, "headline"),
        ("entry.published", {"body": "<p>x</p>", "time_label": "t" * 65}, "time_label"),
    ],
)
def test_empty_notes_and_bodies_and_overlong_text_are_refused(
    event_type: str, data: dict[str, JsonValue], field: str
) -> None:
    """A correction or retraction needs a note readers can see; a body needs content."""
    error = refused(opened("e-1"), event_type, **data)
    assert isinstance(error, InvalidEvent)
    assert refused_fields(error) == [field]


@pytest.mark.parametrize("char", ["\x00", "\x01", "\x08", "\x0b", "\x0c", "\x1b", "\x1f", "\x7f"])
@pytest.mark.parametrize(
    ("event_type", "field", "data"),
    [
        ("entry.published", "body", {}),
        ("entry.published", "headline", {"body": "<p>x</p>"}),
        ("entry.published", "time_label", {"body": "<p>x</p>"}),
        ("entry.corrected", "note", {"entry_id": "e-1", "body": "<p>x</p>"}),
        ("entry.retracted", "note", {"entry_id": "e-1"}),
    ],
)
def test_control_characters_in_text_are_refused(
    char: str, event_type: str, field: str, data: dict[str, JsonValue]
) -> None:
    """U+0000-U+001F (but tab, newline, carriage return) and U+007F are refused, naming the field."""
    value = f"<p>before{char}after</p>" if field == "body" else f"before{char}after"
    error = refused(opened("e-1"), event_type, **data, **{field: value})
    assert isinstance(error, InvalidEvent)
    assert error.code == "invalid_event"
    assert refused_fields(error) == [field]
    assert f"U+{ord(char):04X}" in str(error.details)


def test_each_refused_control_character_is_named_once_in_order_of_appearance() -> None:
    """The refusal lists what to fix as it appears in the text, without repeats."""
    error = refused(opened(), "entry.published", body="<p>a\x1fb\x01c\x1fd\x7f</p>")
    assert isinstance(error, InvalidEvent)
    assert error.details == {
        "errors": [
            {
                "field": "body",
                "problem": "Value error, control characters are not allowed: "
                "U+001F, U+0001, U+007F",
            }
        ]
    }


def test_tab_newline_and_carriage_return_are_accepted_in_text() -> None:
    """The three whitespace control characters are ordinary text."""
    room = opened()
    envelope = room.command(
        "entry.published", body="<p>line one\r\n\tline two</p>", headline="Two\tlines\n"
    )
    assert envelope.data["headline"] == "Two\tlines\n"


def test_editing_keeps_no_note_and_correcting_needs_one() -> None:
    """An edit is silent (no note field at all); a correction carries its note."""
    room = opened("e-1")
    edited = room.command("entry.edited", entry_id="e-1", body="<p>Typo</p>")
    corrected = room.command(
        "entry.corrected", entry_id="e-1", body="<p>Homs</p>", note="Earlier we said Hama"
    )
    assert edited.data == {"entry_id": "e-1", "body": "<p>Typo</p>"}
    assert corrected.data == {
        "entry_id": "e-1",
        "body": "<p>Homs</p>",
        "note": "Earlier we said Hama",
    }


def test_a_plain_paragraph_body_is_accepted() -> None:
    """The simplest safe body, ``<p>text</p>``, lands as sent."""
    room = opened()
    body = "<p>Alep, 18h50 : l’armée dit avoir repris le quartier — 日本語</p>"
    assert room.command("entry.published", body=body).data["body"] == body
