"""The Redis key layout, in one place (docs/architecture.md draws it).

Rules:
- every key of a story carries the hash tag of its partition, ``dateline:{tag}:...``, shared
  with that partition's projector feed, so every script touches one cluster slot: Redis Cluster
  is a setting, not a rewrite. ``p = crc32(story) % partitions()``;
- a store has 16 partitions (``LEGACY_PARTITIONS``, tags ``{0}`` .. ``{15}``) unless it was made
  with more or upgraded (``services.store.repartition``): 64, 256 or 1,024, whose tags are chosen
  so that partition ``p``'s slot lies in the ``p``-th equal share of the 16,384 slots, so a
  cluster whose primaries hold equal slot ranges holds equal numbers of partitions;
- the count is the store's (``PARTITIONS_KEY``), fixed until an upgrade; a process adopts it
  once, when it learns the store (``services.store.identity``), before it touches a story.
"""

from __future__ import annotations

import functools
import zlib
from dataclasses import dataclass

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

LEGACY_PARTITIONS = 16
"""The partitions of a store made before the count could be chosen, and of a new one by default."""
COUNTS = (16, 64, 256, 1024)
"""The partition counts a store may have (each a multiple of the one before: an upgrade splits
every partition into whole new ones)."""
PARTITIONS_KEY = "dateline:partitions"
"""The store's partition count (absent: ``LEGACY_PARTITIONS``)."""
REPARTITION_KEY = "dateline:repartition"
"""Present while an upgrade of the store's partitions is under way: what it is doing (JSON)."""
LEGACY_MARK = "dateline:{0}:store"
"""Partition 0's mark in a store of 16 partitions: a store that has it is not new."""


@dataclass(frozen=True, slots=True)
class Layout:
    """A store's partitions: how many, and the hash tag of each."""

    count: int
    tags: tuple[str, ...]


@functools.cache
def layout(count: int) -> Layout:
    """The layout of ``count`` partitions: the 16 bare tags, or balanced ones (``p.k``, the first
    ``k`` whose slot is in partition ``p``'s share of the slots). Deterministic: every process
    computes the same tags (1,024 take about 0.3 s, once)."""
    if count not in COUNTS:
        raise ValueError(f"a store has {', '.join(map(str, COUNTS))} partitions, not {count}")
    if count == LEGACY_PARTITIONS:
        return Layout(count, tuple(str(p) for p in range(count)))
    tags = []
    for p in range(count):
        low = p * REDIS_CLUSTER_HASH_SLOTS // count
        high = (p + 1) * REDIS_CLUSTER_HASH_SLOTS // count
        k = 0
        while not low <= key_slot(f"{p}.{k}".encode()) < high:
            k += 1
        tags.append(f"{p}.{k}")
    return Layout(count, tuple(tags))


_layout = layout(LEGACY_PARTITIONS)


def adopt(count: int) -> None:
    """Use the store's ``count`` partitions from now on, in this process."""
    global _layout  # the store's layout: fixed once a process has learnt it
    _layout = layout(count)


def partitions() -> int:
    """How many partitions this process's store has."""
    return _layout.count


def ptag(p: int) -> str:
    """Partition ``p``'s key prefix, ``dateline:{tag}``."""
    return f"dateline:{{{_layout.tags[p]}}}"


GROUP = "projectors"
"""The consumer group every projector reads the feeds in (one group: each event folded once)."""
CHANGES_KEPT = 1_024
"""Changes kept per story for a websocket ``since`` (CONTRACT: at least the last 1,000)."""
PARTITION_CHANGES_KEPT = 100_000
"""Changes kept on each partition's stream that gateways tail (a gateway further behind resets)."""
CHECKPOINT_EVERY = 1_000
"""Every this many versions the projector stores the story-level view (meta, pin, key events) with
its version's hash, so a replay folds at most this many events (services/audit/)."""


def partition(story: str) -> int:
    return zlib.crc32(story.encode()) % _layout.count


def tag(story: str) -> str:
    return ptag(partition(story))


def events(story: str) -> str:
    """The record: one stream per story, entry id ``<version>-0``, field ``e`` the envelope."""
    return f"{tag(story)}:s:{story}:events"


def head(story: str) -> str:
    """Hash ``v`` (version), ``h`` (hash) of the chain's last event."""
    return f"{tag(story)}:s:{story}:head"


def feed(p: int) -> str:
    """The projector's feed of partition ``p``: every appended envelope, in append order."""
    return f"{ptag(p)}:feed"


def partition_of_key(key: str) -> int:
    """The partition a partition-tagged key (``dateline:{tag}:…``) belongs to."""
    return int(key.split("{", 1)[1].split("}", 1)[0].split(".", 1)[0])


def dead(p: int) -> str:
    """Partition ``p``'s dead letters: every event a projector parked, with its error (a stream,
    kept: it is the incident's record)."""
    return f"{ptag(p)}:dead"


def parked(p: int) -> str:
    """Hash: each story of partition ``p`` whose projection is parked -> what parked it (JSON)."""
    return f"{ptag(p)}:parked"


def mark(p: int) -> str:
    """The store's identity on partition ``p`` (a string id, the same on every partition).

    Written once, when Dateline first uses a store; ``append.lua`` refuses to write where it is
    not the id the writer knows, so a store wiped or replaced under running services is noticed
    before a version is reused (services/store/identity.py)."""
    return f"{ptag(p)}:store"


def acked(p: int) -> str:
    """A counter on partition ``p``'s primary that a repeated answer increments when replicas
    must be waited for: a write of its own, so the WAITAOF after it, on the connection that
    made it, covers the event the answer repeats (services/store/record.py)."""
    return f"{ptag(p)}:acked"


def mark_of(story: str) -> str:
    return mark(partition(story))


def feed_of(story: str) -> str:
    return feed(partition(story))


def idempotency(story: str, scope: str) -> str:
    """The stored first answer of a keyed request, beside the event it appended."""
    return f"{tag(story)}:idem:{scope}"


def idempotency_claim(scope: str) -> str:
    """Which request a token's key belongs to, whatever story it names (reuse detection)."""
    return f"dateline:idem:{scope}"


def meta(story: str) -> str:
    """Projection: the story's own fields (hash: ``version``, ``json``, ``pinned``,
    ``pinned_json``, ``key_events``)."""
    return f"{tag(story)}:s:{story}:meta"


def entries(story: str) -> str:
    """Projection: entry id -> entry JSON."""
    return f"{tag(story)}:s:{story}:entries"


def order(story: str) -> str:
    """Projection: entry ids scored by the version that published them (the paging index)."""
    return f"{tag(story)}:s:{story}:order"


def changes(story: str) -> str:
    """The story's last changes (entry id ``<version>-0``), for a websocket ``since``."""
    return f"{tag(story)}:s:{story}:changes"


def partition_changes(p: int) -> str:
    """Every change of the partition's stories, in order: what gateways tail (XREAD BLOCK)."""
    return f"{ptag(p)}:changes"


def entry_index(story: str) -> str:
    """Audit index: a sorted set of ``<entry id>:<version, 12 digits>``, one member per event
    about an entry after the one that published it (that version is its score in ``order``),
    all scored 0, so one entry's versions are one lexical range (ZRANGE BYLEX)."""
    return f"{tag(story)}:s:{story}:entry-index"


def entry_index_range(entry_id: str) -> tuple[str, str]:
    """The ZRANGE BYLEX bounds of one entry's members (entry ids never hold ``:``)."""
    return f"[{entry_id}:", f"({entry_id};"


def checkpoints(story: str) -> str:
    """Audit: the story-level view every ``CHECKPOINT_EVERY`` versions (derived, verified on use)."""
    return f"{tag(story)}:s:{story}:checkpoints"


def stories(p: int) -> str:
    """Projection: the partition's stories scored by last activity (µs since the epoch)."""
    return f"{ptag(p)}:stories"


TOKENS = "dateline:{tokens}:hashes"
"""Hash: SHA-256 of a token -> ``{"name", "role"}`` JSON. Tokens themselves are never stored."""
TOKEN_NAMES = "dateline:{tokens}:names"  # noqa: S105 - a key name, not a secret
"""Hash: token name -> SHA-256 of the token."""
TOKEN_REVOKED = "dateline:tokens:revoked"  # noqa: S105 - a channel name
"""Pub/sub channel: a revoked token's hash, so every server drops it from its cache at once."""


def write_bucket(token_hash: str) -> str:
    """A token's write allowance (``rate.lua``): kept in memory only, never in the record."""
    return f"dateline:rate:{token_hash}"
