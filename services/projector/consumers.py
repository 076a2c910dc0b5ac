"""The projector's consumers: the consumer group on every feed, batches in flight, claims.

Rules:
- every projector is a consumer of the group ``projectors`` on every partition's feed, named
  ``<host>-<pid>``, so a restarted projector is a new consumer and its old batch is claimed;
- one ``XREADGROUP`` reads every feed at once, so a batch holds whatever is waiting across all
  partitions (live, a read per partition returns an event or two, and the per-batch costs are
  paid per event); a cluster refuses a read across slots, so there each feed has its reader;
- batches are folded in order, one in flight: a batch's fold and writes are started and the next
  read goes out while ``project.lua`` runs;
- a batch that fails is folded again story by story, so one story's failure holds back only
  that story; what still fails is logged and stays pending: nothing is acknowledged but by the
  script that writes the state;
- an event the fold cannot apply (``Unfoldable``, or a feed entry that holds no envelope) is
  left pending for redelivery, then parked after ``MAX_DELIVERIES`` (``parked.py``): every
  other story of its batch is written as usual;
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

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from events.chain import Envelope
from services.projector import parked
from services.projector.feeds import ensure_groups, envelopes_of
from services.projector.fold import Projector, Unfoldable
from services.store import keys
from services.store.connection import connect, is_cluster
from services.store.keys import GROUP

log = logging.getLogger("dateline.projector")

BATCH = 100
"""Events a projector takes from each feed per read (and per claim)."""
CLAIM_IDLE_MS = 5_000
"""A delivered event unacknowledged this long is taken over by a live projector (XAUTOCLAIM)."""
POLL_MS = 1_000
"""How long a read of the feeds blocks when they are empty."""
RETRY_S = 0.5
"""How long the reader waits before reading again after the store was unreachable."""
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
    """The projector's consumers: one reader of every partition's feed (the consumer group
    ``projectors``), and a claimer that takes over what a dead projector left.

    Batches are folded one after another, but the reader does not wait for a batch's writes: it
    starts them and reads again, so the next batch is read while ``project.lua`` runs (the next
    batch waits for the one before it to be written). A batch that fails is folded again story
    by story; what still fails is logged and stays pending, and the claimer hands it to a
    projector again.
    """

    def __init__(
        self,
        url: str,
        projector_factory: Callable[[], Projector],
        name: str | None = None,
        claim_idle_ms: int = CLAIM_IDLE_MS,
    ) -> None:
        self.url = url
        self.consumer = name or consumer_name()
        self.claim_idle_ms = claim_idle_ms
        self.clustered = is_cluster(url)
        """On a cluster: one reader per feed, on the cluster client's connections."""
        self._factory = projector_factory
        self._projector: Projector | None = None
        self._ahead: dict[str, asyncio.Task[None]] = {}
        self._readers: list[asyncio.Task[None]] = []
        self._claimer: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    @property
    def projector(self) -> Projector:
        if self._projector is None:
            self._projector = self._factory()
        return self._projector

    async def start(self) -> None:
        """Fold what this host's dead projectors left, then read the feeds and claim."""
        await ensure_groups(self.projector.client)
        await self.recover()
        loop = asyncio.get_running_loop()
        feeds = [keys.feed(p) for p in range(keys.PARTITIONS)]
        shares = [[feed] for feed in feeds] if self.clustered else [feeds]
        self._readers = [loop.create_task(self._read_forever(share)) for share in shares]
        self._claimer = loop.create_task(self._claim_forever())

    async def stop(self) -> None:
        """Stop reading (a read or claim round under way ends first, so nothing it took is
        left unfolded), then let the batches already started finish their writes."""
        self._stopping.set()
        await self._unblock_reader()
        for task in (*self._readers, self._claimer):
            if task is not None:
                await task
        if self._ahead:
            await asyncio.wait(set(self._ahead.values()))

    async def _read_forever(self, feeds: Sequence[str]) -> None:
        """Read ``feeds`` in one ``XREADGROUP`` (up to ``BATCH`` entries of each), fold what
        came as one batch, and read again; an unreachable store is read again after
        ``RETRY_S``, a lost group (the store emptied under us) is created again, loudly.

        On a cluster a reader reads one feed; a failover's ``UNBLOCKED`` (its primary became a
        replica under the read), ``CLUSTERDOWN`` and ``TRYAGAIN`` are read again after
        ``RETRY_S``, from wherever the slot lives by then."""
        # its own connection: a blocked read holds it, and its timeout is longer than the block;
        # named, so that stop() can end a blocked read at once (CLIENT UNBLOCK). A cluster's
        # readers are not named (a blocked one ends within POLL_MS of a stop)
        if self.clustered:
            client = connect(self.url, socket_timeout=POLL_MS / 1_000 + 10)
        else:
            client = connect(
                self.url,
                socket_timeout=POLL_MS / 1_000 + 10,
                client_name=self._reader_name,
                single_connection_client=True,
            )
        streams: dict[Any, Any] = dict.fromkeys(feeds, ">")
        try:
            while not self._stopping.is_set():
                try:
                    reply = await client.xreadgroup(
                        GROUP, self.consumer, streams, count=BATCH, block=POLL_MS
                    )
                except (RedisConnectionError, RedisTimeoutError, OSError) as error:
                    log.warning("reading the feeds failed (%s); again in %s s", error, RETRY_S)
                    await self._pause(RETRY_S)
                    continue
                except ResponseError as error:
                    if str(error).startswith(("UNBLOCKED", "CLUSTERDOWN", "TRYAGAIN")):
                        log.warning("reading %s: %s; again in %s s", feeds, error, RETRY_S)
                        await self._pause(RETRY_S)
                        continue
                    if "NOGROUP" not in str(error):
                        raise
                    log.error("the projectors' group is gone from a feed (%s): creating it", error)
                    await ensure_groups(client)
                    continue
                batch_feeds: list[str] = []
                envelopes: list[Envelope] = []
                ids: list[bytes] = []
                for feed, entries in cast("list[tuple[bytes, _Claimed]]", reply or []):
                    found, their_ids, bad = envelopes_of(entries)
                    if bad:
                        await self._unreadable(feed.decode(), bad)
                    batch_feeds.append(feed.decode())
                    envelopes += found
                    ids += their_ids
                    if len(envelopes) >= BATCH:  # a backlog: folded feed by feed, side by side
                        await self._chain(batch_feeds, envelopes, ids)
                        batch_feeds, envelopes, ids = [], [], []
                if envelopes:  # live: what a read brings from every feed is one batch
                    await self._chain(batch_feeds, envelopes, ids)
        finally:
            await client.aclose()

    @property
    def _reader_name(self) -> str:
        return f"projector-reader:{self.consumer}"

    async def _unblock_reader(self) -> None:
        """End the reader's blocked ``XREADGROUP`` now (it returns what it has, or nothing),
        rather than after up to ``POLL_MS``; best effort: a store away ends the read anyway."""
        client = self.projector.client
        with contextlib.suppress(Exception):
            for connection in await client.client_list(_type="normal"):
                if connection.get("name") == self._reader_name:
                    await client.client_unblock(int(connection["id"]))

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _chain(
        self, feeds: Sequence[str], envelopes: list[Envelope], ids: Sequence[bytes]
    ) -> None:
        """Start folding a batch once the batches before it of each of its feeds are done
        (written or failed): a feed's batches are folded in order, other feeds' side by side."""
        before = {t for f in feeds if (t := self._ahead.get(f)) is not None and not t.done()}
        if before:
            await asyncio.wait(before)
        task = asyncio.get_running_loop().create_task(self._fold(envelopes, ids))
        task.add_done_callback(_report)
        for feed in feeds:
            self._ahead[feed] = task

    async def _fold(self, envelopes: list[Envelope], ids: Sequence[bytes]) -> None:
        """Fold a batch; if it fails, fold it again story by story, so that only the stories
        that fail stay pending (their error is raised once all the others are written)."""
        try:
            await self._settle(await self.projector.project(envelopes, ids), envelopes, ids)
            return
        except (RedisConnectionError, RedisTimeoutError, OSError):
            raise  # the store is away: every story would fail alike; the claim folds it later
        except Exception as error:
            if len({e.story for e in envelopes}) < 2:
                raise
            failed: BaseException = error
        by_story: dict[str, tuple[list[Envelope], list[bytes]]] = {}
        for envelope, entry_id in zip(envelopes, ids, strict=True):
            mine = by_story.setdefault(envelope.story, ([], []))
            mine[0].append(envelope)
            mine[1].append(entry_id)
        stuck: list[str] = []
        for story, (theirs, their_ids) in by_story.items():
            try:
                await self._settle(
                    await self.projector.project(theirs, their_ids), theirs, their_ids
                )
            except Exception as error:
                stuck.append(story)
                failed = error
        if stuck:
            raise RuntimeError(f"folding the events of {sorted(stuck)} failed") from failed

    async def _settle(
        self, poisoned: list[Unfoldable], envelopes: Sequence[Envelope], ids: Sequence[bytes]
    ) -> None:
        """Hand each story a batch could not fold to ``parked.handle`` with its entries."""
        done: set[str] = set()
        for poison in poisoned:
            if poison.story in done:
                continue
            done.add(poison.story)
            theirs = [i for e, i in zip(envelopes, ids, strict=True) if e.story == poison.story]
            p = keys.partition(poison.story)
            await parked.handle(self.projector.client, poison, p, theirs, self.consumer)

    async def _unreadable(self, feed: str, bad: list[tuple[Unfoldable, bytes]]) -> None:
        """Feed entries that hold no envelope: each a poison event of the feed it is on."""
        p = int(feed.split("{", 1)[1].split("}", 1)[0])
        for poison, entry_id in bad:
            await parked.handle(self.projector.client, poison, p, [entry_id], self.consumer)

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
                    envelopes, found, bad = envelopes_of(claimed)
                    if bad:
                        await self._unreadable(feed, bad)
                    if found:
                        poisoned = await self.projector.project(envelopes, found)
                        await self._settle(poisoned, envelopes, found)
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
                envelopes, found, bad = envelopes_of(cast(_Claimed, reply[1]))
                if bad:
                    await self._unreadable(feed, bad)
                if found:
                    await self._chain([feed], envelopes, found)
                    taken += len(found)
                if start in (b"0-0", "0-0"):
                    break
        return taken


def _report(task: asyncio.Task[None]) -> None:
    if task.cancelled() or (error := task.exception()) is None:
        return
    if isinstance(error, RedisConnectionError | RedisTimeoutError | OSError):  # not a bug
        log.warning("folding a batch failed (%s); its entries stay pending", error)
    else:
        log.error(
            "folding a batch failed; its entries stay pending and are claimed again",
            exc_info=error,
        )
