"""What a decision needs to know of a story, and nothing more.

The projections provide it (``projections.facts.apply``); decisions read it. Kept small so the
write path can hold it in memory for every open story.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from immutables import Map

from events.chain import GENESIS

EntryStatus = Literal["published", "retracted"]


class EntryFacts(NamedTuple):
    """An entry's status and its embed ids."""

    status: EntryStatus = "published"
    embeds: frozenset[str] = frozenset()


class StoryFacts(NamedTuple):
    """A story's version, chain head, open or closed, entries and pin."""

    story: str
    version: int = 0
    head_hash: str = GENESIS
    status: Literal["absent", "live", "closed"] = "absent"
    pinned: str | None = None
    entries: Map[str, EntryFacts] = Map()  # immutable, so one shared empty map is safe

    @property
    def exists(self) -> bool:
        """Whether ``story.opened`` has been appended."""
        return self.status != "absent"
