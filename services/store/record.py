"""The record: append and read a story's hash-chained events on Redis streams.

An append is one server-side step (``scripts/append.lua``): check the expected version and head
hash, check the idempotency key, XADD the envelope to the story's stream, move the head, record the
idempotency answer and put the envelope on the projector's feed, all or nothing. The decision runs
here in the shell, against the story's facts kept in memory and refreshed from the stream when the
script reports that another writer moved the head, so a write costs one round trip when this
process is the story's only writer.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import cast

from pydantic import JsonValue

from events.base import Command
from events.chain import Envelope, canonical, seal
from events.decide import decide
from events.errors import (
    DatelineError,
    IdempotencyKeyReused,
    InvalidState,
    VersionConflict,
)
from events.facts import StoryFacts
from events.stamp import Stamp
from projections import facts as facts_fold
from services.store import identity, keys, scripts
from services.store.autopipeline import AutoPipeline, Script
from services.store.connection import Client, connect, reachable

log = logging.getLogger("dateline.store")

IDEMPOTENCY_TTL = 48 * 3600
"""Seconds a keyed request's first answer is kept (the contract asks for at least 24 h)."""
FACTS_CACHE = 10_000
"""Stories whose decision facts one process keeps in memory (least recently used go first)."""
READ_BATCH = 1_000
"""Events read from the record per round trip when a whole story is walked."""
_Entries = list[tuple[bytes, dict[bytes, bytes]]]
"""Stream entries as our clients get them (replies are never decoded to text)."""


class _Clock:
    """Server time as the envelope's ``recorded_at`` (UTC, microseconds, ``Z``), its date and
    time of day formatted once a second."""

    def __init__(self) -> None:
        self.second = -1
        self.prefix = ""

    def __call__(self) -> str:
        second, fraction = divmod(time.time_ns() // 1_000, 1_000_000)
        if second != self.second:
            self.prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self.second = second
        return f"{self.prefix}.{fraction:06d}Z"


now_iso = _Clock()


def new_event_id() -> str:
    """A random (version 4) UUID as text, made from 16 random bytes without the uuid module."""
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40
    raw[8] = raw[8] & 0x3F | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def new_id() -> str:
    """A fresh entry or embed id (matches the contract's id pattern)."""
    return os.urandom(6).hex()


@dataclass(frozen=True, slots=True)
class Keyed:
    """An ``Idempotency-Key`` request: the key scoped to its token, and what the request was."""

    key: str
    scope: str
    fingerprint: str

    @classmethod
    def of(cls, token_hash: str, key: str, method: str, path: str, body: JsonValue) -> Keyed:
        """Identity of a request: method, path and parsed JSON body (CONTRACT "Idempotency")."""
        scope = hashlib.sha256(f"{token_hash}\n{key}".encode()).hexdigest()[:40]
        request = canonical({"method": method, "path": path, "body": body})
        return cls(key, scope, hashlib.sha256(request).hexdigest())


@dataclass(frozen=True, slots=True)
class Appended:
    """The answer to an append: the envelope and its stored JSON (the 201 body)."""

    envelope: Envelope | None
    body: bytes
    replayed: bool = False


@dataclass(slots=True)
class _Cached:
    """A story's decision facts, the time of its last event, and the keys ``append.lua`` takes."""

    facts: StoryFacts
    names: scripts.AppendKeys
    recorded_at: str = ""

    @classmethod
    def new(cls, story: str) -> _Cached:
        return cls(StoryFacts(story), scripts.AppendKeys.of(story))


class Store:
    """Appends to and reads from the record on a Redis-protocol server."""

    def __init__(
        self,
        client: Client,
        store_id: str | None = None,
        *,
        ack_replicas: int = 0,
        ack_timeout: float = 1.0,
        partitions: int = keys.LEGACY_PARTITIONS,
    ) -> None:
        self.client = client
        self.given_id = store_id or None
        """The store's id this process was handed (``DATELINE_STORE_ID``), if any."""
        self.partitions = partitions
        """The partitions a new store gets (``DATELINE_PARTITIONS``)."""
        self.store_id: str | None = None
        """The id every append checks the store still carries (``services.store.identity``),
        learned before the first append."""
        self.pipe = AutoPipeline(client, ack_replicas, ack_timeout)
        """The write path's connections (appends, the projector's writes): auto-pipelined, one
        per primary; on a cluster, an append is answered once ``ack_replicas`` replicas have it
        (``DATELINE_ACK_REPLICAS``), or refused as ``StoreUnavailable`` after ``ack_timeout``."""
        self._append = Script(self.pipe, scripts.APPEND, durable=True)
        self._facts: OrderedDict[str, _Cached] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}

    @classmethod
    def from_url(cls, url: str) -> Store:
        return cls(connect(url))

    async def identify(self) -> str:
        """Learn the store's id (``identity.learn``) and keep it for every later append."""
        self.store_id = await identity.learn(self.client, self.given_id, self.partitions)
        return self.store_id

    async def close(self) -> None:
        await self.pipe.close()
        await self.client.aclose()

    async def ping(self) -> bool:
        with reachable():
            return bool(await self.client.ping())

    async def healthy(self) -> None:
        """Raise ``StoreUnavailable`` unless the store answers and is still the record this
        process writes to (``details.store`` = ``"lost"`` when it was emptied or replaced)."""
        await self.ping()
        if self.store_id is None:
            await self.identify()
            return
        refusal = await identity.check(self.client, self.store_id)
        if refusal is not None:
            raise refusal

    # -- reading the record -------------------------------------------------------------------

    async def read(
        self,
        story: str,
        from_version: int = 1,
        to_version: int | None = None,
        limit: int | None = None,
    ) -> list[Envelope]:
        """Envelopes ``from_version..to_version`` in version order, at most ``limit``."""
        rows = await self.read_raw(story, from_version, to_version, limit)
        return [Envelope.model_validate_json(raw) for _, raw in rows]

    async def read_raw(
        self,
        story: str,
        from_version: int = 1,
        to_version: int | None = None,
        limit: int | None = None,
    ) -> list[tuple[int, bytes]]:
        """Like ``read``, but each envelope's stored JSON as is, with its version (for serving)."""
        end = "+" if to_version is None else f"{to_version}-0"
        with reachable():
            rows = cast(
                _Entries,
                await self.client.xrange(
                    keys.events(story), f"{max(from_version, 1)}-0", end, count=limit
                ),
            )
        return [(int(stream_id.split(b"-", 1)[0]), fields[b"e"]) for stream_id, fields in rows]

    async def iterate(self, story: str, from_version: int = 1) -> AsyncIterator[Envelope]:
        """Every envelope from ``from_version`` on, read in batches (for long stories)."""
        start = max(from_version, 1)
        while True:
            batch = await self.read(story, start, limit=READ_BATCH)
            for envelope in batch:
                yield envelope
            if len(batch) < READ_BATCH:
                return
            start = batch[-1].version + 1

    async def head(self, story: str) -> tuple[int, str | None]:
        """The story's current version and chain head hash (0 and None when it does not exist)."""
        with reachable():
            v, h = cast("list[bytes | None]", await self.client.hmget(keys.head(story), "v", "h"))
        return (int(v), h.decode()) if v and h else (0, None)

    # -- deciding and appending ---------------------------------------------------------------

    async def facts(self, story: str, *, refresh: bool = False) -> StoryFacts:
        """The story's decision facts, from memory, brought up to the stream's head if asked."""
        cached = self._facts.get(story)
        if cached is None:
            cached = _Cached.new(story)
            self._facts[story] = cached
            refresh = True
        self._facts.move_to_end(story)
        while len(self._facts) > FACTS_CACHE:
            self._facts.popitem(last=False)
        if refresh:
            async for envelope in self.iterate(story, cached.facts.version + 1):
                try:
                    cached.facts = facts_fold.apply(cached.facts, envelope)
                except Exception as error:  # a poison event in the record: no decision is sound
                    raise InvalidState(
                        f"story {story!r} holds an event this server cannot fold (version "
                        f"{envelope.version}, {envelope.type}: {type(error).__name__}); writes "
                        "to it are refused until that is fixed",
                        {"version": envelope.version, "type": envelope.type},
                    ) from None
                cached.recorded_at = envelope.recorded_at
        return cached.facts

    def _lock(self, story: str) -> asyncio.Lock:
        lock = self._locks.get(story)
        if lock is None:
            if len(self._locks) > FACTS_CACHE:
                self._locks = {k: v for k, v in self._locks.items() if v.locked()}
            lock = self._locks[story] = asyncio.Lock()
        return lock

    async def first_answer(self, story: str, keyed: Keyed) -> Appended | None:
        """The stored answer of a keyed request seen before, or None; refuses a reused key.

        Also claims the key for this request across every story, so the same key with another
        request, on any story, is refused (CONTRACT "Idempotency identity").
        """
        claim_key = keys.idempotency_claim(keyed.scope)
        with reachable():  # three commands, one round trip on the write path's connection
            record, _, claim = await asyncio.gather(
                self.pipe.execute("GET", keys.idempotency(story, keyed.scope)),
                self.pipe.execute("SET", claim_key, keyed.fingerprint, "NX", "EX", IDEMPOTENCY_TTL),
                self.pipe.execute("GET", claim_key),
            )
        if claim is not None and claim.decode() != keyed.fingerprint:
            raise IdempotencyKeyReused("this Idempotency-Key was used for another request")
        if record is None:
            return None
        if record[:64].decode() != keyed.fingerprint:
            raise IdempotencyKeyReused("this Idempotency-Key was used for another request")
        await self._replicated(story)
        return Appended(None, bytes(record[65:]), replayed=True)

    async def _replicated(self, story: str) -> None:
        """Before an answer repeats an event appended earlier (perhaps by another process, its
        first answer a 503 because no replica had it yet): wait until the replicas asked for
        have it. WAITAOF counts its own connection's writes, so a write to the story's primary
        (``keys.acked``) goes first; the replication stream is in order, so a replica that has
        it has the event too. Nothing to do on one server, or when no replica is asked for."""
        if self.pipe.ack_replicas:
            with reachable():
                await self.pipe.execute("INCR", keys.acked(keys.partition(story)), durable=True)

    async def release(self, keyed: Keyed) -> None:
        """Give up the claim of a keyed request that was refused, so a fixed retry may use it."""
        with reachable():  # one key: the write path's connection (on a cluster, its primary's)
            await self.pipe.execute("DEL", keys.idempotency_claim(keyed.scope))

    async def append(
        self,
        story: str,
        command: Command,
        *,
        actor: str,
        expected_version: int | None = None,
        keyed: Keyed | None = None,
    ) -> Appended:
        """Decide ``command`` against the story and append the event, exactly once.

        Raises the decision's error, ``VersionConflict`` when ``expected_version`` is not the
        story's version, ``IdempotencyKeyReused``, or ``StoreUnavailable``.
        """
        if keyed is not None:
            answer = await self.first_answer(story, keyed)
            if answer is not None:
                return answer
        store_id = self.store_id or await self.identify()
        async with self._lock(story):
            refresh = False
            while True:
                facts = await self.facts(story, refresh=refresh)
                if expected_version is not None and expected_version != facts.version:
                    if not refresh:  # our memory may be behind: look before refusing
                        refresh = True
                        continue
                    raise VersionConflict(
                        f"story is at version {facts.version}, not {expected_version}",
                        facts.version,
                    )
                cached = self._facts[story]
                recorded_at = max(now_iso(), cached.recorded_at)  # never before the previous event
                stamp = Stamp(recorded_at=recorded_at, actor=actor, new_id=new_id())
                try:
                    event = decide(facts, command, stamp)
                except DatelineError:
                    if refresh:
                        raise
                    refresh = True  # refuse only on facts fresh from the stream, never stale ones
                    continue
                envelope = seal(
                    event_id=new_event_id(),
                    story=story,
                    version=facts.version + 1,
                    type=event.TYPE,
                    data=event.to_data(),
                    actor=actor,
                    recorded_at=recorded_at,
                    idempotency_key=None if keyed is None else keyed.key,
                    prev_hash=facts.head_hash,
                )
                body = envelope.to_json()
                names = cached.names
                if keyed is not None:
                    names = scripts.AppendKeys.of(story, keyed.scope)
                call = scripts.append(
                    names,
                    expected_version=facts.version,
                    expected_hash=facts.head_hash,
                    version=envelope.version,
                    new_hash=envelope.hash,
                    envelope=body,
                    fingerprint="" if keyed is None else keyed.fingerprint,
                    ttl=IDEMPOTENCY_TTL,
                    story=story,
                    store=store_id,
                )
                with reachable():
                    status, value = await self._append(*call)
                if status == b"dup":  # an event appended before: perhaps not replicated yet
                    await self._replicated(story)
                if status == b"ok" or (status == b"dup" and bytes(value) == body):
                    # (the second: this call ran, its reply was lost and the client sent it again)
                    cached.facts = facts_fold.apply(facts, envelope)
                    cached.recorded_at = recorded_at
                    return Appended(envelope, body)
                if status == b"dup":
                    return Appended(None, bytes(value), replayed=True)
                if status == b"reused":
                    raise IdempotencyKeyReused("this Idempotency-Key was used for another request")
                if status == b"lost":  # the store was emptied or replaced: nothing was written
                    found = bytes(value).decode() or None
                    log.error("refusing to append to %s: the store lost its data", story)
                    raise identity.lost(store_id, {found})
                refresh = True  # another writer moved the head: catch up and decide again
