"""Embed decisions: attach and remove (CONTRACT.md "Event types", "Details: Embeds").

Which URLs the allow-list takes is ``events.urls``'s business (tests/events/test_urls.py); here
only URLs every kind accepts are used: https on example.org for images and links, YouTube for video.
"""

from __future__ import annotations

import pytest
from pydantic import JsonValue

from events.errors import (
    DatelineError,
    InvalidEvent,
    InvalidState,
    UnknownEmbed,
    UnknownEntry,
)
from tests.strategies import opened, refused, refused_fields

VIDEO = "https://www.youtube.com/watch?v=dQw4w9WgXcQ"
IMAGE = "https://example.org/aleppo-citadel.jpg"


def test_attaching_without_an_id_stores_the_server_assigned_one() -> None:
    """The embed gets the stamp's id, stored in data so a replay needs nothing else."""
    room = opened("e-1")
    envelope = room.command("embed.attached", entry_id="e-1", kind="video", url=VIDEO)
    assert envelope.data == {"entry_id": "e-1", "embed_id": "auto-3", "kind": "video", "url": VIDEO}
    assert room.facts.entries["e-1"].embeds == {"auto-3"}


def test_attaching_keeps_the_tools_embed_id_caption_and_alt() -> None:
    """Every field sent is stored as sent."""
    room = opened("e-1")
    envelope = room.command(
        "embed.attached",
        entry_id="e-1",
        embed_id="photo",
        kind="image",
        url=IMAGE,
        caption="The citadel at dusk",
        alt="A stone fortress on a hill",
    )
    assert envelope.data == {
        "entry_id": "e-1",
        "embed_id": "photo",
        "kind": "image",
        "url": IMAGE,
        "caption": "The citadel at dusk",
        "alt": "A stone fortress on a hill",
    }


def test_an_embed_id_already_on_the_entry_is_refused() -> None:
    """Embed ids are unique on their entry: invalid_event naming embed_id."""
    room = opened("e-1")
    room.command("embed.attached", entry_id="e-1", embed_id="photo", kind="image", url=IMAGE)
    error = refused(
        room, "embed.attached", entry_id="e-1", embed_id="photo", kind="link", url=IMAGE
    )
    assert isinstance(error, InvalidEvent)
    assert refused_fields(error) == ["embed_id"]


def test_the_same_embed_id_on_another_entry_is_accepted() -> None:
    """Embed ids are scoped to their entry."""
    room = opened("e-1", "e-2")
    room.command("embed.attached", entry_id="e-1", embed_id="photo", kind="image", url=IMAGE)
    room.command("embed.attached", entry_id="e-2", embed_id="photo", kind="image", url=IMAGE)
    assert room.facts.entries["e-2"].embeds == {"photo"}


def test_a_removed_embed_id_can_be_used_again() -> None:
    """Once removed, an embed id is free on its entry."""
    room = opened("e-1")
    room.command("embed.attached", entry_id="e-1", embed_id="photo", kind="image", url=IMAGE)
    room.command("embed.removed", entry_id="e-1", embed_id="photo")
    room.command("embed.attached", entry_id="e-1", embed_id="photo", kind="link", url=IMAGE)
    assert room.facts.entries["e-1"].embeds == {"photo"}


def test_removing_an_embed_the_entry_lacks_is_unknown_embed() -> None:
    """embed.removed needs the embed to exist: 404 unknown_embed, nothing appended."""
    room = opened("e-1", "e-2")
    room.command("embed.attached", entry_id="e-2", embed_id="photo", kind="image", url=IMAGE)
    error = refused(room, "embed.removed", entry_id="e-1", embed_id="photo")
    assert isinstance(error, UnknownEmbed)
    assert (error.status, error.code) == (404, "unknown_embed")


def test_removing_from_a_missing_entry_is_unknown_entry() -> None:
    """The entry is looked up before its embeds."""
    error = refused(opened("e-1"), "embed.removed", entry_id="e-9", embed_id="photo")
    assert isinstance(error, UnknownEntry)


def test_embedding_on_a_retracted_entry_is_invalid_state() -> None:
    """A retracted entry takes no embeds: 409 invalid_state."""
    room = opened("e-1")
    room.command("entry.retracted", entry_id="e-1", note="Unverified")
    error = refused(room, "embed.attached", entry_id="e-1", kind="image", url=IMAGE)
    assert isinstance(error, InvalidState)
    assert (error.status, error.code) == (409, "invalid_state")


def test_a_retraction_drops_the_entrys_embeds() -> None:
    """After a retraction the entry has no embeds left to remove."""
    room = opened("e-1")
    room.command("embed.attached", entry_id="e-1", embed_id="photo", kind="image", url=IMAGE)
    room.command("entry.retracted", entry_id="e-1", note="Unverified")
    assert room.facts.entries["e-1"].embeds == frozenset()
    assert isinstance(
        refused(room, "embed.removed", entry_id="e-1", embed_id="photo"), DatelineError
    )


def test_embedding_on_a_closed_story_lands() -> None:
    """Closed stories still take embeds on existing entries."""
    room = opened("e-1")
    room.command("story.closed")
    assert room.command("embed.attached", entry_id="e-1", kind="video", url=VIDEO).version == 4


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"kind": "gif", "url": IMAGE}, "kind"),
        ({"kind": "image", "url": ""}, "url"),
        ({"kind": "image", "url": IMAGE, "caption": "a\x00b"}, "caption"),
        ({"kind": "image", "url": IMAGE, "alt": "a\x7fb"}, "alt"),
        ({"kind": "image", "url": IMAGE, "embed_id": "Photo"}, "embed_id"),
        ({"kind": "image", "url": IMAGE, "width": 640}, "width"),
    ],
)
def test_an_invalid_embed_field_is_refused_by_name(data: dict[str, JsonValue], field: str) -> None:
    """Kind, url, caption, alt and embed id are checked before anything is decided."""
    error = refused(opened("e-1"), "embed.attached", entry_id="e-1", **data)
    assert isinstance(error, InvalidEvent)
    assert refused_fields(error) == [field]
