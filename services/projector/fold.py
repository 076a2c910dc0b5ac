"""The projector: folds each appended event into the story state that readers get.

``Consumers``: a FastStream Redis consumer group (``projectors``) on every partition's feed, in
batch mode (``StreamSub(batch=True)``): each batch of up to ``BATCH`` events is folded by
``Projector.project``, which writes the states of all its stories at once. For each story,
``scripts/project.lua`` writes version ``a..b`` only where the stored state is at ``a``: a
redelivered event is skipped, never applied twice, and two projectors in one group can share the
work. A batch is acknowledged by the script that writes its states; a projector that dies leaves
its batch pending, and a live one claims it (XAUTOCLAIM) once it has been idle ``CLAIM_IDLE_MS``,
or at once if it starts on the same host. When a story's state is behind the first event of a
batch (another projector holds the events between), the gap is read from the record.

State layout: one hash field per entry plus an ordered index, so an event costs a constant number of
small writes however long the story grows (docs/architecture.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import os
import socket
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from typing import Any

import orjson
import redis.asyncio as redis
from faststream import AckPolicy
from faststream.redis import RedisBroker, StreamSub
from faststream.redis.annotations import RedisBatchStreamMessage
from immutables import Map

from events.chain import Envelope, canonical
from projections.changes import View, step
from projections.story import Entry, StoryState
from services.store import keys
from services.store.autopipeline import Script
from services.store.keys import CHANGES_KEPT, CHECKPOINT_EVERY, GROUP, PARTITION_CHANGES_KEPT
from services.store.record import Store

log = logging.getLogger("dateline.projector")

BATCH = 100
"""Events a projector takes from a feed per read."""
CLAIM_IDLE_MS = 5_000
"""A delivered event unacknowledged this long is taken over by a live projector (XAUTOCLAIM)."""
POLL_MS = 1_000
TRIM_EVERY_S = 30.0
"""How often a projector trims each feed up to what the group has acknowledged."""


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _score(recorded_at: str | None) -> int:
    if not recorded_at:
        return 0
    delta = datetime.fromisoformat(recorded_at) - _EPOCH
    return delta // timedelta(microseconds=1)  # exact, and below 2**53 for centuries


@dataclass(slots=True)
class _Loaded:
    version: int
    view: View
    loaded: Map[str, Entry]
    """The entries as read (or cached): an entry still identical to its loaded self is unchanged."""


PROJECT_SCRIPT = files("services.store.scripts").joinpath("project.lua").read_text()
VIEWS_KEPT = 1_000
"""Stories whose view (meta, pin, key events, entries seen) a projector keeps between batches."""
ENTRIES_KEPT = 5_000
"""A kept view with more entries than this is dropped and read again when next needed."""


class Projector:
    """Folds envelopes into the stored state of their stories, and emits their changes.

    A story's view is kept in memory after each write, so the next batch of that story reads
    nothing first; ``project.lua`` checks the stored version, so a view made stale by another
    projector costs one refused write and a fresh read, never a wrong state.
    """

    def __init__(self, client: redis.Redis, store: Store) -> None:
        self.client = client
        self.store = store
        self._script = Script(store.pipe, PROJECT_SCRIPT)
        self._views: OrderedDict[str, _Loaded] = OrderedDict()
        self.applied = 0
        self.skipped = 0

    async def _load(self, stories: dict[str, list[Envelope]]) -> dict[str, _Loaded]:
        """Each story's view with the entries its events touch: from memory, else one pipeline."""
        loaded: dict[str, _Loaded] = {}
        missing: list[str] = []
        for story, events in stories.items():
            kept = self._views.get(story)
            if kept is not None and all(
                i in kept.view.state.entries
                for e in events
                if e.type != "entry.published" and (i := e.entry_id)
            ):
                loaded[story] = kept
            else:
                missing.append(story)
        if not missing:
            return loaded
        async with self.client.pipeline(transaction=False) as pipe:
            for story in missing:
                pipe.hmget(
                    keys.meta(story), "version", "json", "pinned", "pinned_json", "key_events"
                )
                ids = sorted({i for e in stories[story] if (i := e.entry_id)})
                pipe.hmget(keys.entries(story), ids) if ids else pipe.echo(b"")
            replies = await pipe.execute()
        for n, story in enumerate(missing):
            (version, meta, pinned, pinned_json, key_events), found = replies[2 * n : 2 * n + 2]
            entries = {}
            if isinstance(found, list):
                for raw in found:
                    if raw is not None:
                        entry = Entry.from_json(orjson.loads(raw))
                        entries[entry.entry_id] = entry
            if meta:
                state = StoryState.from_meta(
                    orjson.loads(meta), pinned.decode() or None, Map(entries)
                )
                view = View(
                    state,
                    orjson.loads(pinned_json) if pinned_json else None,
                    tuple(orjson.loads(key_events)) if key_events else (),
                )
            else:
                view = View(StoryState(story))
            loaded[story] = _Loaded(int(version or 0), view, view.state.entries)
        return loaded

    async def project(
        self, envelopes: Iterable[Envelope], delivered: Sequence[bytes] | None = None
    ) -> None:
        """Fold a batch of envelopes (any stories, any order, duplicates allowed) into state.

        ``delivered`` are the feed entry ids the envelopes came in (same order): each is
        acknowledged by the script that writes its story's state, in the same atomic step, or,
        for an event already applied, once the batch is done. So a batch costs one round trip,
        and a crash between the state write and the acknowledgement cannot happen.
        """
        stories: dict[str, dict[int, Envelope]] = defaultdict(dict)
        acks: dict[str, list[bytes]] = defaultdict(list)
        for n, envelope in enumerate(envelopes):
            stories[envelope.story][envelope.version] = envelope
            if delivered is not None:
                acks[envelope.story].append(delivered[n])
        pending = {s: [v[k] for k in sorted(v)] for s, v in stories.items()}
        for _attempt in range(20):
            if not pending:
                break
            pending = await self._project_once(pending, acks)
        else:
            raise RuntimeError(f"projection of {sorted(pending)} kept racing another projector")
        left = {story: ids for story, ids in acks.items() if ids}
        if left:  # events already applied before: nothing was written, so acknowledge them now
            async with self.client.pipeline(transaction=False) as pipe:
                for story, ids in left.items():
                    pipe.xack(keys.feed_of(story), GROUP, *ids)
                await pipe.execute()

    async def _project_once(
        self, stories: dict[str, list[Envelope]], acks: dict[str, list[bytes]]
    ) -> dict[str, list[Envelope]]:
        loaded = await self._load(stories)
        retry: dict[str, list[Envelope]] = {}
        writes: list[tuple[str, int, View, list[Any]]] = []
        for story, events in stories.items():
            current = loaded[story]
            fresh = [e for e in events if e.version > current.version]
            self.skipped += len(events) - len(fresh)
            if not fresh:
                continue
            if fresh[0].version != current.version + 1:  # the events before are elsewhere
                self._views.pop(story, None)
                missing = await self.store.read(story, current.version + 1, fresh[0].version - 1)
                retry[story] = missing + fresh
                continue
            view, args = self._fold(story, current, fresh)
            ids = acks.get(story, [])
            args += [len(ids), GROUP, *ids]
            writes.append((story, fresh[0].version, view, args))
        if writes:
            results = await self._write(writes)
            for (story, first, view, _), result in zip(writes, results, strict=True):
                if result == -1:
                    self.applied += view.state.version - first + 1
                    self._keep(story, view)
                    acks.pop(story, None)  # acknowledged by the script itself
                else:
                    self._views.pop(story, None)
                    if result < view.state.version:
                        retry[story] = stories[story]  # raced another projector: fold again
        return retry

    async def _write(self, writes: list[tuple[str, int, View, list[Any]]]) -> list[Any]:
        """Run ``project.lua`` for every story at once, the calls sent in one write on the
        store's auto-pipelined connection (``services.store.autopipeline``): the server takes them in
        one turn, under one fsync."""
        return await self._script.many([(_names(story), args) for story, _, _, args in writes])

    def _keep(self, story: str, view: View) -> None:
        if len(view.state.entries) > ENTRIES_KEPT:
            self._views.pop(story, None)
            return
        self._views[story] = _Loaded(view.state.version, view, view.state.entries)
        self._views.move_to_end(story)
        while len(self._views) > VIEWS_KEPT:
            self._views.popitem(last=False)

    def _fold(
        self, story: str, current: _Loaded, events: Sequence[Envelope]
    ) -> tuple[View, list[Any]]:
        view = current.view
        changes: list[Any] = []
        index: list[str] = []
        members: list[str] = []
        marks: list[Any] = []
        written: dict[str, bytes] = {}  # entry id -> its JSON after the last change that names it
        story_json = orjson.dumps(story)
        for envelope in events:
            view, change = step(view, envelope)
            entry = change["entry"]
            raw = b"null"
            if isinstance(entry, dict):  # the entry's JSON, serialized once for both writes
                raw = written[str(entry["entry_id"])] = orjson.dumps(entry)
            changes += [envelope.version, frame(story_json, change, raw)]
            entry_id = envelope.entry_id
            if entry_id is not None:
                index.append(entry_id)
                if envelope.type != "entry.published":  # that one is its score in `order`
                    members.append(f"{entry_id}:{envelope.version:012d}")
            if envelope.version % CHECKPOINT_EVERY == 0:
                marks += [envelope.version, checkpoint(view, envelope)]
        state = view.state
        args: list[Any] = [
            current.version,
            state.version,
            orjson.dumps(state.meta_json()),
            state.pinned or "",
            orjson.dumps(view.pinned) if view.pinned else "",
            orjson.dumps(list(view.key_events)),
            _score(state.updated_at),
            story,
            CHANGES_KEPT,
            PARTITION_CHANGES_KEPT,
            len(events),
            *changes,
        ]
        before = current.loaded
        touched = dict.fromkeys(index)  # the entries these events name, in order
        changed = [
            e for i in touched if (e := state.entries.get(i)) is not None and before.get(i) is not e
        ]  # never a scan of the whole story: a batch costs what its events touch
        args.append(len(changed))
        for entry in changed:
            raw = written.get(entry.entry_id) or orjson.dumps(entry.to_json())
            args += [entry.entry_id, raw]
        for entry in changed:
            args += [entry.published_version, entry.entry_id]
        args += [len(members), *members, len(marks) // 2, *marks]
        return view, args


@functools.lru_cache(maxsize=VIEWS_KEPT)
def _names(story: str) -> list[str]:
    """The keys ``project.lua`` takes for ``story``, in its order (made once per story kept)."""
    p = keys.partition(story)
    return [
        keys.meta(story),
        keys.entries(story),
        keys.order(story),
        keys.stories(p),
        keys.changes(story),
        keys.partition_changes(p),
        keys.entry_index(story),
        keys.checkpoints(story),
        keys.feed(p),
    ]


@functools.lru_cache(maxsize=64)
def _json(text: str) -> bytes:
    """An event type as JSON (a handful of names, encoded once each)."""
    return orjson.dumps(text)


def frame(story_json: bytes, change: dict[str, Any], entry_json: bytes) -> bytes:
    """``orjson.dumps(change)``, byte for byte, from parts already serialized: the story id
    (once a batch) and the entry (also written to the entries hash). Cheaper than a dict
    merge and a second walk of the entry, per event."""
    meta = change["story_meta"]
    return b'{"type":"change","story":%b,"version":%d,"event":%b,"entry":%b,"story_meta":%b}' % (
        story_json,
        change["version"],
        _json(change["event"]),
        entry_json,
        b"null" if meta is None else orjson.dumps(meta),
    )


def checkpoint(view: View, envelope: Envelope) -> bytes:
    """The checkpoint of ``view`` at ``envelope``'s version: the view, its digest and the event's
    hash, so a replay can tell a damaged or stale checkpoint and pass it by."""
    body = {
        "meta": view.state.meta_json(),
        "pinned": view.pinned,
        "key_events": list(view.key_events),
    }
    return orjson.dumps(
        {
            "version": envelope.version,
            "event_hash": envelope.hash,
            "digest": hashlib.sha256(canonical(body)).hexdigest(),
            "view": body,
        }
    )


async def ensure_groups(client: redis.Redis) -> None:
    """Create the projectors' group on every feed, from the feed's start (so nothing is missed)."""
    for p in range(keys.PARTITIONS):
        try:
            await client.xgroup_create(keys.feed(p), GROUP, id="0", mkstream=True)
        except redis.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise


async def trim_feeds(client: redis.Redis) -> None:
    """Drop feed entries every projector has acknowledged (the record keeps them forever)."""
    for p in range(keys.PARTITIONS):
        feed = keys.feed(p)
        groups = await client.xinfo_groups(feed)
        floor: bytes | None = None
        for group in groups:
            candidates = [group["last-delivered-id"]]
            if group["pending"]:
                summary = await client.xpending(feed, group["name"])
                candidates.append(summary["min"])
            low = min(candidates, key=_id_key)
            floor = low if floor is None else min(floor, low, key=_id_key)
        if floor is not None and floor != b"0-0":
            await client.xtrim(feed, minid=floor, approximate=True)


def _id_key(stream_id: bytes | str) -> tuple[int, int]:
    text = stream_id.decode() if isinstance(stream_id, bytes) else stream_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


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


DATA = b"__data__"


def _batch(
    entries: Iterable[tuple[bytes, Mapping[bytes, bytes] | None]],
) -> tuple[list[Envelope], list[bytes]]:
    """The envelopes of claimed feed entries and their ids (an entry without fields, if a server
    sends one for an entry trimmed meanwhile, has nothing to fold)."""
    found = [(i, fields) for i, fields in entries if fields]
    return [Envelope.model_validate_json(f[DATA]) for _, f in found], [i for i, _ in found]


class _Feed(StreamSub):  # type: ignore[type-arg]
    """FastStream's ``StreamSub``, not copied when there is no prefix to add: FastStream reads
    its subscription through ``add_prefix``, which deep-copies it, several times per read (about
    0.1 ms per batch, a tenth of the projector's CPU for a single event). The broker has no
    prefix, so the copy would equal the original, and nothing in FastStream changes it."""

    __slots__ = ()

    def add_prefix(self, prefix: str) -> _Feed:
        return self if not prefix else super().add_prefix(prefix)


async def lean_batch(message: Mapping[str, Any], original: Any) -> Any:
    """FastStream's batch parser without its body work: it would decode each envelope's JSON,
    encode the batch again and decode that; the handler parses each envelope once instead."""
    parsed = await original({**message, "data": []})
    parsed.raw_message = message
    return parsed


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
        self.broker = RedisBroker(url, logger=None, apply_types=False)
        self.consumer = name or consumer_name()
        self.claim_idle_ms = claim_idle_ms
        self._factory = projector_factory
        self._projector: Projector | None = None
        self._ahead: dict[str, asyncio.Task[None]] = {}
        self._claimer: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        for p in range(keys.PARTITIONS):
            self.broker.subscriber(
                stream=_Feed(
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
                    ids = [h["message_id"] for h in held if h["message_id"] not in seen]
                    if not ids:  # none left, or only what a failed fold left behind
                        break
                    seen.update(ids)
                    # an entry trimmed from the feed meanwhile leaves the PEL (Redis 7+)
                    envelopes, found = _batch(await client.xclaim(feed, GROUP, me, 0, ids))
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
                envelopes, found = _batch(reply[1])
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
