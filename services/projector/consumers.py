"""The projector's consumers: the consumer group on every feed, batches in flight, claims.

Rules:
- every projector is a consumer of the group ``projectors`` on every partition's feed, named
  ``<host>-<pid>``, so a restarted projector is a new consumer and its old batch is claimed;
- each feed's batches are folded in order, one in flight: the handler starts a batch's fold and
  writes and returns, so FastStream reads the next batch while ``project.lua`` runs;
- a batch that fails is logged and stays pending: nothing is acknowledged but by the script that
  writes the state;
- a batch delivered ``CLAIM_IDLE_MS`` ago and still pending is claimed by a live projector
  (XAUTOCLAIM, ``BATCH`` at a time, folded like a batch), and at start a projector folds at once
  what provably dead consumers of this host left (docs/limits.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable, Sequence
from typing import Any, cast

from faststream import AckPolicy
from faststream.redis import RedisBroker
from faststream.redis.annotations import RedisBatchStreamMessage

from events.chain import Envelope
from services.projector.feeds import DATA, Feed, envelopes_of, lean_batch
from services.projector.fold import Projector
from services.store import keys
from services.store.keys import GROUP

log = logging.getLogger("dateline.projector")

BATCH = 100
"""Events a projector takes from a feed per read (and per claim)."""
CLAIM_IDLE_MS = 5_000
"""A delivered event unacknowledged this long is taken over by a live projector (XAUTOCLAIM)."""
POLL_MS = 1_000
"""How long a read of the feeds blocks when they are empty."""
_Claimed = list[tuple[bytes, dict[bytes, bytes] | None]]
"""Claimed feed entries as our clients get them (bytes; no fields for one trimmed meanwhile)."""


def consumer_name() -> str:
    """Unique per process: a restarted projector is a new consumer; its old batch is claimed."""
    return f"{socket.gethostname()}-{os.getpid()}"


def _gone(consumer: str, me: str) -> bool:
    """Whether ``consumer`` is provably dead: it is this very name (a restart that got the same
    pid, as in a container), or a process of this host that no longer runs. Anything else may
    be alive elsewhere and is left to the idle claim."""
    if consumer == me:
        return True
    host, _, pid = consumer.rpartition("-")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class Consumers:
    """The projector's consumers: a FastStream batch subscriber on every partition's feed (the
    consumer group ``projectors``), and a claimer that takes over what a dead projector left.

    Each feed's batches are folded one after another, but the handler does not wait for its
    batch's writes: it starts them and returns, so FastStream reads the next batch while
    ``project.lua`` runs (the next batch waits for the one before it to be written). A batch
    that fails is logged and stays pending; the claimer hands it to a projector again.
    """

    def __init__(
        self,
        url: str,
        projector_factory: Callable[[], Projector],
        name: str | None = None,
        claim_idle_ms: int = CLAIM_IDLE_MS,
    ) -> None:
        # apply_types=False: no FastDepends injection; the handler takes the message from the
        # context, which costs less per batch than resolving a typed signature.
        # logger=None turns FastStream's logging off (documented), though its stub asks for one
        self.broker = RedisBroker(url, logger=None, apply_types=False)  # type: ignore[arg-type]  # see above
        self.consumer = name or consumer_name()
        self.claim_idle_ms = claim_idle_ms
        self._factory = projector_factory
        self._projector: Projector | None = None
        self._ahead: dict[str, asyncio.Task[None]] = {}
        self._claimer: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        for p in range(keys.PARTITIONS):
            self.broker.subscriber(
                stream=Feed(
                    keys.feed(p),
                    group=GROUP,
                    consumer=self.consumer,
                    batch=True,
                    max_records=BATCH,
                    polling_interval=POLL_MS,
                ),
                ack_policy=AckPolicy.MANUAL,
                no_reply=True,
                parser=lean_batch,
            )(self._handle)

    @property
    def projector(self) -> Projector:
        if self._projector is None:
            self._projector = self._factory()
        return self._projector

    async def start(self) -> None:
        """Fold what this host's dead projectors left, then read the feeds and claim."""
        await self.recover()
        await self.broker.start()
        self._claimer = asyncio.get_running_loop().create_task(self._claim_forever())

    async def stop(self) -> None:
        """Stop reading (a claim round under way ends first, so nothing it took is left
        unfolded), then let the batches already started finish their writes."""
        self._stopping.set()
        if self._claimer is not None:
            await self._claimer
        await self.broker.stop()
        if self._ahead:
            await asyncio.wait(self._ahead.values())

    async def _handle(self, *_: Any) -> None:
        message: RedisBatchStreamMessage = self.broker.context.get("message")
        raw = message.raw_message
        envelopes = [Envelope.model_validate_json(item[DATA]) for item in raw["data"]]
        await self._chain(raw["channel"], envelopes, raw["message_ids"])
        # No message.ack(): project.lua acknowledges each entry with its story's state.

    async def _chain(self, feed: str, envelopes: list[Envelope], ids: Sequence[bytes]) -> None:
        """Start folding a batch once the feed's batch before it is done (written or failed)."""
        before = self._ahead.get(feed)
        if before is not None and not before.done():
            await asyncio.wait([before])
        task = asyncio.get_running_loop().create_task(self.projector.project(envelopes, ids))
        task.add_done_callback(_report)
        self._ahead[feed] = task

    async def _claim_forever(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.claim_idle_ms / 2_000)
            if self._stopping.is_set():
                return
            try:
                await self.claim()
            except Exception as error:  # the store away, say: the next round tries again
                log.warning("claiming idle feed entries failed: %s", error)

    async def recover(self) -> int:
        """Take over and fold at once the events that provably dead projectors (``_gone``) left
        pending, and drop those consumers from the group. Returns how many events.

        Without it they wait ``claim_idle_ms`` for the claimer, and a reader's ``min_version``
        (5 s) can time out right after a restart. A consumer wrongly judged dead costs only
        work: ``project.lua`` skips what is already applied.
        """
        client, me, taken = self.projector.client, self.consumer, 0
        for p in range(keys.PARTITIONS):
            feed = keys.feed(p)
            for consumer in await client.xinfo_consumers(feed, GROUP):
                name = consumer["name"].decode()
                if not _gone(name, me):
                    continue
                seen: set[bytes] = set()
                while consumer["pending"]:
                    held = await client.xpending_range(
                        feed, GROUP, min="-", max="+", count=BATCH, consumername=name
                    )
                    held_ids = cast("list[bytes]", [h["message_id"] for h in held])
                    ids = [i for i in held_ids if i not in seen]
                    if not ids:  # none left, or only what a failed fold left behind
                        break
                    seen.update(ids)
                    # an entry trimmed from the feed meanwhile leaves the PEL (Redis 7+)
                    claimed = cast(_Claimed, await client.xclaim(feed, GROUP, me, 0, list(ids)))
                    envelopes, found = envelopes_of(claimed)
                    if found:
                        await self.projector.project(envelopes, found)
                    taken += len(found)
                if name != me:
                    await client.xgroup_delconsumer(feed, GROUP, name)
        return taken

    async def claim(self) -> int:
        """Take over every feed entry delivered ``claim_idle_ms`` ago or more and still not
        acknowledged (XAUTOCLAIM, ``BATCH`` at a time), and fold it. Returns how many."""
        client = self.projector.client
        taken = 0
        for p in range(keys.PARTITIONS):
            feed, start = keys.feed(p), "0-0"
            while True:
                reply = await client.xautoclaim(
                    feed, GROUP, self.consumer, self.claim_idle_ms, start, count=BATCH
                )
                start = reply[0]
                envelopes, found = envelopes_of(cast(_Claimed, reply[1]))
                if found:
                    await self._chain(feed, envelopes, found)
                    taken += len(found)
                if start in (b"0-0", "0-0"):
                    break
        return taken


def _report(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error(
            "folding a batch failed; its entries stay pending and are claimed again",
            exc_info=error,
        )
