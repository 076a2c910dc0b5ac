"""Embeds: attach and remove (CONTRACT.md "Event types", "Details: Embeds").

Rules: https only, no userinfo, no explicit port (``:443`` too); ``image`` and ``link`` take any
such URL; ``video``, ``social`` and ``map`` only from the provider allow-list below (a subdomain of
a listed host counts; ``google.com/maps`` is that host with path ``/maps`` or ``/maps/...``). An
embed goes on an entry that exists and is not retracted; an embed id is unused on its entry.
"""

from __future__ import annotations

from typing import Literal

from events.base import Command, EventData
from events.entries import live_entry
from events.errors import InvalidEvent, UnknownEmbed
from events.facts import StoryFacts
from events.ids import Id
from events.stamp import Stamp
from events.story import require_story
from events.text import Caption, Url
from events.urls import refused_embed_url

EmbedKind = Literal["video", "image", "social", "map", "link"]


class AttachEmbed(Command):
    TYPE = "embed.attached"
    entry_id: Id
    embed_id: Id | None = None
    kind: EmbedKind
    url: Url
    caption: Caption | None = None
    alt: Caption | None = None


class RemoveEmbed(Command):
    TYPE = "embed.removed"
    entry_id: Id
    embed_id: Id


class EmbedAttached(EventData):
    TYPE = "embed.attached"
    entry_id: str
    embed_id: str
    kind: EmbedKind
    url: str
    caption: str | None = None
    alt: str | None = None


class EmbedRemoved(EventData):
    TYPE = "embed.removed"
    entry_id: str
    embed_id: str


def attach_embed(story: StoryFacts, command: AttachEmbed, stamp: Stamp) -> EmbedAttached:
    """Attach a video, image, social post, map or link to a live entry."""
    entry = live_entry(story, command.entry_id, "given an embed")
    refused = refused_embed_url(command.kind, command.url)
    if refused:
        raise InvalidEvent(
            f"embed url refused: {'; '.join(refused)}", {"field": "url", "refused": list(refused)}
        )
    embed_id = command.embed_id or stamp.new_id
    if embed_id in entry.embeds:
        raise InvalidEvent(
            f"embed {embed_id!r} already exists on entry {command.entry_id!r}",
            {"field": "embed_id", "refused": [embed_id]},
        )
    return EmbedAttached(
        entry_id=command.entry_id,
        embed_id=embed_id,
        kind=command.kind,
        url=command.url,
        caption=command.caption,
        alt=command.alt,
    )


def remove_embed(story: StoryFacts, command: RemoveEmbed, stamp: Stamp) -> EmbedRemoved:
    """Remove an embed the entry has."""
    require_story(story)
    entry = live_entry(story, command.entry_id, "changed")
    if command.embed_id not in entry.embeds:
        raise UnknownEmbed(f"embed {command.embed_id!r} is not on entry {command.entry_id!r}")
    return EmbedRemoved(entry_id=command.entry_id, embed_id=command.embed_id)
