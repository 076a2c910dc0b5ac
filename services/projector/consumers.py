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
- on a cluster each feed's reader holds one connection to the feed's primary, opened again from
  a fresh slot map after a failover (``UNBLOCKED``, ``MOVED``, a lost connection), and reads what
  it was delivered and did not fold before going on;
- with ``DATELINE_ACK_REPLICAS=N`` on a cluster no event is folded before N replicas have it:
  after each read (and claim) the reader waits on that same connection (``replicas.replicated``;
  the delivery is replicated after the entries it delivered), so no state, change or frame is
  ever made from an event a failover could still lose (CONTRACT "Outgrowing one Redis");
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
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, cast

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import (
    AskError,
    ClusterDownError,
    ReadOnlyError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from events.chain import Envelope
from services.projector import parked
from services.projector.feeds import ensure_groups, envelopes_of
from services.projector.fold import Projector, Unfoldable
from services.store import identity, keys
from services.store.connection import Client, connect, is_cluster, primary_client
from services.store.keys import GROUP
from services.store.replicas import replicated

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
        *,
        ack_replicas: int = 0,
        ack_timeout: float = 1.0,
    ) -> None:
        self.url = url
        self.consumer = name or consumer_name()
        self.claim_idle_ms = claim_idle_ms
        self.clustered = is_cluster(url)
        """On a cluster: one reader per feed, on a connection to the feed's primary."""
        self.ack_replicas = ack_replicas if self.clustered else 0
        """Replicas an event must be on before it is folded (``DATELINE_ACK_REPLICAS``)."""
        self.ack_timeout = ack_timeout
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
        await identity.adopt_layout(self.projector.client)
        await ensure_groups(self.projector.client)
        await self.recover()
        loop = asyncio.get_running_loop()
        feeds = [keys.feed(p) for p in range(keys.partitions())]
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

        On a cluster a reader reads one feed; an answer that means "not on this node now"
        (``_not_here``: a failover's ``UNBLOCKED`` or ``READONLY``, ``MOVED``, ``CLUSTERDOWN``,
        ``TRYAGAIN``) is read again after ``RETRY_S``, from wherever the slot lives by then. Any
        other error is logged and read again too: a reader never dies quietly, leaving its
        feed unfolded."""
        # its own connection: a blocked read holds it, and its timeout is longer than the block;
        # named, so that stop() can end a blocked read at once (CLIENT UNBLOCK; on a cluster a
        # blocked one ends within POLL_MS instead) and an upgrade can see a projector running
        client: Client | None = None
        streams: dict[Any, Any] = dict.fromkeys(feeds, ">")
        try:
            while not self._stopping.is_set():
                try:
                    if client is None:
                        client = await self._reader_client(feeds)
                        if self.clustered:  # first what it was delivered and did not fold
                            streams = dict.fromkeys(feeds, "0")
                    reply = await client.xreadgroup(
                        GROUP, self.consumer, streams, count=BATCH, block=POLL_MS
                    )
                    streams = dict.fromkeys(feeds, ">")
                    if reply and not await self._replicated(client, feeds[0]):
                        continue  # stopping: what it read stays pending for a claim
                except (RedisConnectionError, RedisTimeoutError, OSError) as error:
                    log.warning("reading %s failed (%s); again in %s s", feeds, error, RETRY_S)
                    client = await self._reopen(client)
                    await self._pause(RETRY_S)
                    continue
                except ResponseError as error:
                    if "NOGROUP" in str(error):
                        log.error(
                            "the projectors' group is gone from a feed (%s): creating it", error
                        )
                        await ensure_groups(self.projector.client)
                        continue
                    if _not_here(error):
                        log.warning("reading %s: %s; again in %s s", feeds, error, RETRY_S)
                    else:  # never let a reader die quietly: its feed would stop being folded
                        log.error("reading %s failed: %r; again in %s s", feeds, error, RETRY_S)
                    client = await self._reopen(client)
                    await self._pause(RETRY_S)
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
            if client is not None:
                await client.aclose()

    async def _reader_client(self, feeds: Sequence[str]) -> Client:
        """The reader's connection: to the one server, or to the primary of its feed's slot."""
        timeout = POLL_MS / 1_000 + 10
        cluster = self.projector.client
        if isinstance(cluster, RedisCluster):
            await cluster.initialize()
            return primary_client(
                cluster, feeds[0], socket_timeout=timeout, client_name=self._reader_name
            )
        return connect(
            self.url,
            socket_timeout=timeout,
            client_name=self._reader_name,
            single_connection_client=True,
        )

    async def _reopen(self, client: Client | None) -> Client | None:
        """After a failed read on a cluster: drop the connection and refresh the slot map, so
        the next read goes to the feed's primary of now. One server's client is kept."""
        cluster = self.projector.client
        if client is None or not isinstance(cluster, RedisCluster):
            return client
        with contextlib.suppress(Exception):
            await client.aclose()
        with contextlib.suppress(Exception):
            await cluster.nodes_manager.initialize()
        return None

    async def _replicated(self, client: Client, feed: str) -> bool:
        """Wait until the replicas asked for have what ``client``'s connection just read or
        claimed from ``feed`` (``DATELINE_ACK_REPLICAS``; at once when none is asked for).
        False only when the projector is stopping first.

        A blocked ``XREADGROUP`` that another client's ``XADD`` served leaves its connection's
        replication offset where it was (measured on Valkey 9: ``WAITAOF`` then answers at
        once, with the replica stopped), so a write of this connection's own goes first: the
        ``keys.acked`` counter in the feed's slot, as ``Store`` does before a repeated answer.
        The replication stream is in order: a replica that has that write has the entries."""
        if not self.ack_replicas:
            return True
        assert not isinstance(client, RedisCluster)
        while True:
            await client.incr(keys.acked(keys.partition_of_key(feed)))
            acked = await replicated(client, self.ack_replicas, self.ack_timeout)
            if acked >= self.ack_replicas:
                return True
            log.warning(
                "events of %s are on %s of the %s replicas asked for: folded once they are",
                feed,
                acked,
                self.ack_replicas,
            )
            if self._stopping.is_set():
                return False

    @contextlib.asynccontextmanager
    async def _on_primary(self, feed: str) -> AsyncIterator[Client]:
        """The client a claim of ``feed`` runs on: when replicas are waited for, a connection of
        its own to the feed's primary (the wait counts that connection's claims)."""
        cluster = self.projector.client
        if not self.ack_replicas or not isinstance(cluster, RedisCluster):
            yield cluster
            return
        await cluster.initialize()
        client = primary_client(cluster, feed, socket_timeout=10)
        try:
            yield client
        except (ResponseError, RedisConnectionError, RedisTimeoutError, OSError):
            # MOVED, a lost primary: the next round asks a slot map of now
            with contextlib.suppress(Exception):
                await cluster.nodes_manager.initialize()
            raise
        finally:
            await client.aclose()

    @property
    def _reader_name(self) -> str:
        return f"projector-reader:{self.consumer}"

    async def _unblock_reader(self) -> None:
        """End the reader's blocked ``XREADGROUP`` now (it returns what it has, or nothing),
        rather than after up to ``POLL_MS``; best effort: a store away ends the read anyway."""
        client = self.projector.client
        if isinstance(client, RedisCluster):
            return  # a client id is one node's: the cluster client cannot say which node's
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
        p = keys.partition_of_key(feed)
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
        me, taken = self.consumer, 0
        for p in range(keys.partitions()):
            feed = keys.feed(p)
            async with self._on_primary(feed) as client:
                taken += await self._recover(client, feed, me)
        return taken

    async def _recover(self, client: Client, feed: str, me: str) -> int:
        """``recover`` of one feed, on ``client``."""
        taken = 0
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
                if found and not await self._replicated(client, feed):
                    break
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
        taken = 0
        for p in range(keys.partitions()):
            feed, start = keys.feed(p), "0-0"
            async with self._on_primary(feed) as client:
                while True:
                    reply = await client.xautoclaim(
                        feed, GROUP, self.consumer, self.claim_idle_ms, start, count=BATCH
                    )
                    start = reply[0]
                    envelopes, found, bad = envelopes_of(cast(_Claimed, reply[1]))
                    if bad:
                        await self._unreadable(feed, bad)
                    if found and not await self._replicated(client, feed):
                        break
                    if found:
                        await self._chain([feed], envelopes, found)
                        taken += len(found)
                    if start in (b"0-0", "0-0"):
                        break
        return taken


def _not_here(error: ResponseError) -> bool:
    """Whether a cluster's answer means "not on this node now": a failover (``UNBLOCKED``, a
    replica's ``READONLY`` or its refusal of ``WAIT``), a moved or moving slot, a cluster not
    ready. The reader then finds the feed's primary again; nothing it read is lost (what it
    was delivered and did not fold it reads again first)."""
    if isinstance(error, AskError | TryAgainError | ClusterDownError | ReadOnlyError):
        return True
    text = str(error)
    return text.startswith(("UNBLOCKED", "CLUSTERDOWN", "TRYAGAIN", "READONLY", "LOADING")) or (
        "replica" in text
    )


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
