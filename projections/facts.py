"""The decision facts of a story, folded from its events: what the write path keeps in memory.

Same rules as ``projections.story`` for what decisions can see: entries and their status and
embed ids, open or closed, the pin (which a retraction takes away), version and chain head.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from functools import reduce

from events.chain import Envelope
from events.facts import EntryFacts, StoryFacts


def _entry_id(envelope: Envelope) -> str:
    value = envelope.data["entry_id"]
    if not isinstance(value, str):  # decisions always store it; anything else is a bug
        raise TypeError(f"entry_id of {envelope.type} v{envelope.version} is not a string")
    return value


def apply(facts: StoryFacts, envelope: Envelope) -> StoryFacts:
    """Fold one event into the facts."""
    kind = envelope.type
    facts = replace(facts, version=envelope.version, head_hash=envelope.hash)
    if kind == "story.opened":
        return replace(facts, status="live")
    if kind == "story.closed":
        return replace(facts, status="closed")
    if kind == "story.updated":
        return facts
    entry_id = _entry_id(envelope)
    if kind == "entry.published":
        return replace(facts, entries=facts.entries.set(entry_id, EntryFacts()))
    entry = facts.entries[entry_id]
    if kind == "entry.retracted":
        pinned = None if facts.pinned == entry_id else facts.pinned
        retracted = EntryFacts(status="retracted")
        return replace(facts, entries=facts.entries.set(entry_id, retracted), pinned=pinned)
    if kind == "entry.pinned":
        return replace(facts, pinned=entry_id)
    if kind == "entry.unpinned":
        return replace(facts, pinned=None)
    if kind in ("embed.attached", "embed.removed"):
        embed_id = envelope.data["embed_id"]
        if not isinstance(embed_id, str):
            raise TypeError(f"embed_id of {envelope.type} v{envelope.version} is not a string")
        embeds = (
            entry.embeds | {embed_id} if kind == "embed.attached" else entry.embeds - {embed_id}
        )
        return replace(facts, entries=facts.entries.set(entry_id, replace(entry, embeds=embeds)))
    return facts  # entry.edited, entry.corrected: nothing a decision looks at changes


def replay(
    story: str, envelopes: Iterable[Envelope], facts: StoryFacts | None = None
) -> StoryFacts:
    """Fold events in version order, from ``facts`` or from nothing."""
    return reduce(apply, envelopes, facts or StoryFacts(story))
