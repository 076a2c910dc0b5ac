"""The store's Lua scripts and, for each, the one builder of its KEYS and ARGV.

Rules:
- a script's slots are named in two places only: its builder here (keyword-only parameters, in
  the script's order) and the comment that opens the script, which parses them into locals;
- a script checks its arity before it reads or writes anything and answers
  ``ERR <script>: expected ...`` naming every slot, so a caller out of step fails loudly;
- a builder only lays its arguments out, with no validation per call: the write path calls
  ``append`` for every event and ``project`` for every story of a batch, and the script checks
  the arity anyway.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from importlib.resources import files
from typing import NamedTuple

from services.store import keys

Arg = str | int | bytes
"""One ARGV slot, as the connection packs it."""


def _source(name: str) -> str:
    return files(__name__).joinpath(name).read_text()


APPEND = _source("append.lua")
PROJECT = _source("project.lua")
CREATE_TOKEN = _source("create_token.lua")
READ_PAGE = _source("read_page.lua")
RATE = _source("rate.lua")


class AppendKeys(NamedTuple):
    """The KEYS of ``append.lua``, in its order."""

    events: str
    head: str
    feed: str
    idempotency: str
    mark: str

    @classmethod
    def of(cls, story: str, scope: str = "-") -> AppendKeys:
        """The story's keys; ``scope`` names a keyed request's idempotency record."""
        return cls(
            keys.events(story),
            keys.head(story),
            keys.feed_of(story),
            keys.idempotency(story, scope),
            keys.mark_of(story),
        )


def append(
    names: AppendKeys,
    *,
    expected_version: int,
    expected_hash: str,
    version: int,
    new_hash: str,
    envelope: bytes,
    fingerprint: str,
    ttl: int,
    story: str,
    store: str,
) -> tuple[AppendKeys, list[Arg]]:
    """KEYS and ARGV of ``append.lua``: append ``envelope`` at ``version`` where the head is
    still ``(expected_version, expected_hash)`` and the store is still ``store``;
    ``fingerprint`` is ``''`` without a key."""
    return names, [
        expected_version,
        expected_hash,
        version,
        new_hash,
        envelope,
        fingerprint,
        ttl,
        story,
        store,
    ]


class ProjectKeys(NamedTuple):
    """The KEYS of ``project.lua``, in its order."""

    meta: str
    entries: str
    order: str
    stories: str
    changes: str
    partition_changes: str
    entry_index: str
    checkpoints: str
    feed: str


def project_keys(story: str) -> ProjectKeys:
    """The keys ``project.lua`` takes for ``story`` (made once per story while it is in use)."""
    return _project_keys(story, keys.partitions())


@functools.lru_cache(maxsize=1_000)
def _project_keys(story: str, partitions: int) -> ProjectKeys:
    """``project_keys`` under the store's partition count (an upgrade changes every name)."""
    p = keys.partition(story)
    return ProjectKeys(
        keys.meta(story),
        keys.entries(story),
        keys.order(story),
        keys.stories(p),
        keys.changes(story),
        keys.partition_changes(p),
        keys.entry_index(story),
        keys.checkpoints(story),
        keys.feed(p),
    )


def project(
    names: ProjectKeys,
    *,
    from_version: int,
    to_version: int,
    meta_json: bytes,
    pinned: str,
    pinned_json: bytes | str,
    key_events: bytes,
    activity: int,
    story: str,
    changes: Sequence[Arg],
    entries: Sequence[Arg],
    published: Sequence[Arg],
    index: Sequence[str],
    checkpoints: Sequence[Arg],
    acks: Sequence[bytes],
    changes_kept: int = keys.CHANGES_KEPT,
    partition_changes_kept: int = keys.PARTITION_CHANGES_KEPT,
    group: str = keys.GROUP,
) -> tuple[ProjectKeys, list[Arg]]:
    """KEYS and ARGV of ``project.lua``: the story's state from ``from_version`` to
    ``to_version``. The sections are flat: ``changes`` (version, frame) pairs, ``entries`` (id,
    JSON) pairs with ``published`` (version, id) pairs of the same entries, ``index`` members,
    ``checkpoints`` (version, JSON) pairs, ``acks`` feed entry ids; each is sent after its count.
    The layout constants default to the key layout's."""
    return names, [
        from_version,
        to_version,
        meta_json,
        pinned,
        pinned_json,
        key_events,
        activity,
        story,
        changes_kept,
        partition_changes_kept,
        group,
        len(changes) // 2,
        *changes,
        len(entries) // 2,
        *entries,
        *published,
        len(index),
        *index,
        len(checkpoints) // 2,
        *checkpoints,
        len(acks),
        *acks,
    ]


def create_token(
    *, names: str, tokens: str, name: str, digest: str, record: bytes
) -> tuple[list[str], list[Arg]]:
    """KEYS and ARGV of ``create_token.lua``: the token ``name`` and its record, or nothing
    when the name is taken."""
    return [names, tokens], [name, digest, record]


def read_page(story: str, *, high: str, count: int) -> tuple[list[str], list[Arg]]:
    """KEYS and ARGV of ``read_page.lua``: ``count`` entries of ``story``'s page, newest first,
    published at or below ``high`` (``'+inf'``, or ``'(<before>'``), with its meta, atomically."""
    return [keys.meta(story), keys.order(story), keys.entries(story)], [high, count]


def rate(bucket: str, *, interval_us: int, burst: int) -> tuple[list[str], list[Arg]]:
    """KEYS and ARGV of ``rate.lua``: take one write from ``bucket``, which refills one write
    every ``interval_us`` microseconds up to ``burst``."""
    return [bucket], [interval_us, burst]
