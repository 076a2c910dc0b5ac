"""Parked stories: a poison event set aside with its error, so every other story keeps flowing.

Rules:
- an event the fold cannot apply is tried again by redelivery (the claim) until its feed entry
  has been delivered ``MAX_DELIVERIES`` times; then it is parked (``services.store.parking``:
  a dead letter with story, version, type, error, deliveries, when and by whom, the story's
  mark, and its feed entries in hand acknowledged, in one transaction);
- a parked story's projection stays at the version before the poison event (readers see that
  version, never a state that skipped it: a replay would disagree); its later events are
  acknowledged as they come, held behind the parked one, since the record keeps them all;
- ``services.store.parking.retry`` unparks the story and rings its feed: once the fold is
  fixed the story catches up whole, and if it is not, it is parked again after
  ``MAX_DELIVERIES``; the dead letters stay (the incident's record).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from pydantic import JsonValue

from services.projector.fold import Unfoldable
from services.store import keys, parking
from services.store.connection import Client
from services.store.keys import GROUP

log = logging.getLogger("dateline.projector")

MAX_DELIVERIES = 3
"""Deliveries of a poison event's feed entry before it is parked (the claim redelivers it every
``CLAIM_IDLE_MS``, so it is parked about 10 to 15 s after it first failed)."""


async def deliveries(client: Client, feed: str, ids: Sequence[bytes]) -> int:
    """The most times any of ``ids`` has been delivered to the group (0: none still pending)."""
    async with client.pipeline(transaction=False) as pipe:
        for entry_id in ids:
            pipe.xpending_range(feed, GROUP, min=entry_id, max=entry_id, count=1)
        replies = await pipe.execute()
    return max((int(r[0]["times_delivered"]) for r in replies if r), default=0)


async def handle(client: Client, poison: Unfoldable, p: int, ids: Sequence[bytes], by: str) -> str:
    """Decide what becomes of a poison event whose story's entries ``ids`` of feed ``p`` are in
    hand: ``held`` (the story is parked already: acknowledged), ``parked`` now, or ``retry``
    (left pending for the claim to deliver again)."""
    feed = keys.feed(p)
    if await parking.is_parked(client, p, poison.story):
        if ids:
            await client.xack(feed, GROUP, *ids)
        return "held"
    times = await deliveries(client, feed, ids)
    if times < MAX_DELIVERIES:
        log.warning(
            "folding %s failed at version %d (delivery %d of %d; tried again later): %s",
            poison.story,
            poison.version,
            times,
            MAX_DELIVERIES,
            poison.reason,
        )
        return "retry"
    letter: dict[str, JsonValue] = {
        "story": poison.story,
        "version": poison.version,
        "type": poison.event_type,
        "error": poison.reason,
        "deliveries": times,
        "parked_at": datetime.now(UTC).isoformat(timespec="microseconds"),
        "by": by,
    }
    await parking.park(client, p, poison.story, letter, ids)
    log.error(
        "parked %s at version %d after %d deliveries: %s (every other story goes on; "
        "`dateline projection retry %s` once the fold is fixed)",
        poison.story,
        poison.version,
        times,
        poison.reason,
        poison.story,
    )
    return "parked"
