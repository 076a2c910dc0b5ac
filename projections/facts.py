"""The decision facts of a story, folded from its events: what the write path keeps in memory.

Same rules as ``projections.story`` for what decisions can see: entries and their status and
embed ids, open or closed, the pin (which a retraction takes away), version and chain head.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import reduce

from events.chain import Envelope
from events.facts import EntryFacts, StoryFacts


def apply(facts: StoryFacts, envelope: Envelope) -> StoryFacts:
    """Fold one event into the facts (one constructor call: this runs on every append)."""
    kind = envelope.type
    status, pinned, entries = facts.status, facts.pinned, facts.entries
    if kind == "story.opened":
        status = "live"
    elif kind == "story.closed":
        status = "closed"
    elif kind != "story.updated":
        entry_id = envelope.entry_id
        if entry_id is None:  # decisions always store it; anything else is a bug
            raise TypeError(f"{envelope.type} v{envelope.version} names no entry")
        if kind == "entry.published":
            entries = entries.set(entry_id, EntryFacts())
        elif kind == "entry.retracted":
            pinned = None if pinned == entry_id else pinned
            entries = entries.set(entry_id, EntryFacts(status="retracted"))
        elif kind == "entry.pinned":
            pinned = entry_id
        elif kind == "entry.unpinned":
            pinned = None
        elif kind in ("embed.attached", "embed.removed"):
            entry = entries[entry_id]
            embed_id = envelope.data["embed_id"]
            if not isinstance(embed_id, str):
                raise TypeError(f"embed_id of {envelope.type} v{envelope.version} is not a string")
            embeds = (
                entry.embeds | {embed_id} if kind == "embed.attached" else entry.embeds - {embed_id}
            )
            entries = entries.set(entry_id, EntryFacts(entry.status, embeds))
        # entry.edited, entry.corrected: nothing a decision looks at changes
    return StoryFacts(facts.story, envelope.version, envelope.hash, status, pinned, entries)


def replay(
    story: str, envelopes: Iterable[Envelope], facts: StoryFacts | None = None
) -> StoryFacts:
    """Fold events in version order, from ``facts`` or from nothing."""
    return reduce(apply, envelopes, facts or StoryFacts(story))
