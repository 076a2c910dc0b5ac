"""What this process knows of each followed story's current version, without asking the store.

A state machine with no I/O (the clock is passed in); ``services.http.app`` feeds it from the
change tail (``services.store.changefeed``) and from the reads it makes. Rules:
- a story is followed once this process has read it (``learned``); at most ``MAX_FOLLOWED``
  are, the least recently asked forgotten first;
- a followed story's version only moves up: the tail's changes and the store's reads both raise
  it (the tail starts before any read, so together they miss nothing);
- the versions are trusted only while the tail is current: it has had a reply within ``FRESH``
  seconds and has not failed since. A failed or silent tail forgets them all, so during a store
  outage every request goes to the store (and is answered 503), never a version passed off as
  current; the tail's next reply trusts what is learned from then on.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

MAX_FOLLOWED = 10_000
"""Stories one process follows at most (a version each: a few hundred kB)."""
FRESH = 3.0
"""Seconds a tail reply stays current: three of its 1 s blocking reads."""


class Heads:
    """Each followed story's current version, as far as the tail and this process's reads tell."""

    def __init__(self, limit: int = MAX_FOLLOWED, fresh: float = FRESH) -> None:
        self.limit = limit
        self.fresh = fresh
        self._versions: OrderedDict[str, int] = OrderedDict()
        self._replied: float | None = None
        """When the tail last replied (None: not since it started or last failed)."""

    @property
    def following(self) -> bool:
        """Whether the tail has replied since it started or last failed."""
        return self._replied is not None

    def current(self, story: str, now: float) -> int | None:
        """The story's current version, or None when it is not followed or the tail is stale."""
        if self._replied is None or now - self._replied > self.fresh:
            return None
        version = self._versions.get(story)
        if version is not None:
            self._versions.move_to_end(story)
        return version

    def learned(self, story: str, version: int) -> None:
        """A read of the store found ``story`` at ``version``: follow it from now on."""
        known = self._versions.get(story, 0)
        self._versions[story] = max(known, version)
        self._versions.move_to_end(story)
        while len(self._versions) > self.limit:
            self._versions.popitem(last=False)

    def changed(self, story: str, fields: Mapping[bytes, bytes]) -> None:
        """One entry of the change tail: its story's version moves to the last it holds."""
        known = self._versions.get(story)
        if known is None:
            return
        versions = [int(name) for name in fields if name.isdigit()]
        if versions and max(versions) > known:
            self._versions[story] = max(versions)

    def replied(self, now: float) -> None:
        """The tail had a reply: what it has delivered is current as of ``now``."""
        self._replied = now

    def failed(self) -> None:
        """The tail lost the store: forget every version (they may be stale)."""
        self._replied = None
        self._versions.clear()
