"""The key layout: every key of a story in its partition's cluster slot, partitions stable."""

from __future__ import annotations

import zlib

from redis.crc import key_slot

from services.store import keys

STORIES = ["a", "p-0", "t-0123456789abcdef", "élection-2026", "x" * 64]


def story_keys(story: str) -> list[str]:
    return [
        keys.events(story),
        keys.head(story),
        keys.meta(story),
        keys.entries(story),
        keys.order(story),
        keys.changes(story),
        keys.entry_index(story),
        keys.checkpoints(story),
        keys.idempotency(story, "scope"),
        keys.feed_of(story),
        keys.partition_changes(keys.partition(story)),
        keys.stories(keys.partition(story)),
    ]


def test_every_key_of_a_story_carries_its_partitions_hash_tag() -> None:
    """Each key names the story's partition as its hash tag, ``{p}``."""
    for story in STORIES:
        tag = f"{{{keys.partition(story)}}}"
        assert all(tag in key for key in story_keys(story)), story


def test_every_key_of_a_story_lands_in_one_cluster_slot() -> None:
    """One slot per story, so each script runs on one node of a Redis Cluster."""
    for story in STORIES:
        assert len({key_slot(k.encode()) for k in story_keys(story)}) == 1, story


def test_the_partition_is_stable_and_in_range() -> None:
    """A story's partition is crc32 of its id modulo PARTITIONS, the same on every call."""
    for story in [*STORIES, *(f"s-{n}" for n in range(200))]:
        p = keys.partition(story)
        assert 0 <= p < keys.partitions()
        assert p == keys.partition(story) == zlib.crc32(story.encode()) % keys.partitions()


def test_stories_spread_over_every_partition() -> None:
    """Enough stories use all partitions, so no projector feed is left idle."""
    assert {keys.partition(f"s-{n}") for n in range(500)} == set(range(keys.partitions()))


def test_token_keys_share_one_slot() -> None:
    """The token hashes and names are written together by one script, so share a slot."""
    assert key_slot(keys.TOKENS.encode()) == key_slot(keys.TOKEN_NAMES.encode())
