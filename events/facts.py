"""What a decision needs to know of a story, and nothing more.

The projections provide it (``projections.facts.apply``); decisions read it. Kept small so the
write path can hold it in memory for every open story.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from immutables import Map

from events.chain import GENESIS

EntryStatus = Literal["published", "retracted"]


@dataclass(frozen=True, slots=True)
class EntryFacts:
    """An entry's status and its embed ids."""

    status: EntryStatus = "published"
    embeds: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class StoryFacts:
    """A story's version, chain head, open or closed, entries and pin."""

    story: str
    version: int = 0
    head_hash: str = GENESIS
    status: Literal["absent", "live", "closed"] = "absent"
    pinned: str | None = None
    entries: Map[str, EntryFacts] = field(default_factory=Map)

    @property
    def exists(self) -> bool:
        """Whether ``story.opened`` has been appended."""
        return self.status != "absent"
