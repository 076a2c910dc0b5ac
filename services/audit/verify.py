"""Verification: the hash chain re-walked from the record alone (CONTRACT.md "HTTP API",
``/verify``; docs/audit.md).

Rule: ``verify`` trusts nothing but the record and the head: every ``data_hash``, every link, and
that the walk ends at the head's version and hash (so a deleted last event is caught). None of
the projector's derived data is read.
"""

from __future__ import annotations

from events.chain import ChainWalk, Verification
from events.errors import UnknownStory
from services.store.record import Store


async def verify(store: Store, story: str) -> Verification:
    """Re-walk the chain from the record alone, and check it ends at the head."""
    head_version, head_hash = await store.head(story)
    if head_version == 0:
        raise UnknownStory(f"story {story!r} does not exist")
    walk = ChainWalk()
    async for envelope in store.iterate(story):
        if not walk.feed(envelope):
            return walk.result()
    result = walk.result()
    if result.events != head_version or result.head_hash != head_hash:
        missing = min(result.events + 1, head_version)  # the record stops short of its head
        return Verification(False, result.events, result.head_hash, missing)
    return result
