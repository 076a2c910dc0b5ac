"""The fold shell: envelopes folded into the stored state of their stories, and their changes.

Rules:
- a batch holds any stories, in any order, with duplicates; it is grouped by story and sorted by
  version, and each story is folded by ``projections.changes.step`` (the pure fold readers,
  replays and browsers share);
- ``scripts/project.lua`` writes a story's versions ``a..b`` only where the stored state is at
  ``a``: a redelivered event is skipped, never applied twice, and two projectors share the work;
- a story whose state is behind the batch's first event (another projector holds the events
  between) has the gap read from the record: the feed is a doorbell, the record the truth;
- the script acknowledges the feed entries with the state it writes, in one atomic step;
- a batch costs what its events touch, never a scan of the whole story: one hash field per entry
  plus an ordered index (docs/architecture.md, "The projector");
- an event the fold cannot apply (a type it does not know, data it cannot use) stops its story
  just before it: the versions before it in the batch are written, nothing of the story is
  acknowledged, and the event comes back as ``Unfoldable`` for the consumers to retry or park;
  every other story of the batch is written as if it were not there.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from immutables import Map
from pydantic import JsonValue

from events.chain import Envelope, canonical
from projections.changes import View, step
from projections.story import Entry, StoryState
from services import faults
from services.store import keys, scripts
from services.store.autopipeline import Script
from services.store.connection import Client
from services.store.keys import CHECKPOINT_EVERY, GROUP
from services.store.record import Store

VIEWS_KEPT = 1_000
"""Stories whose view (meta, pin, key events, entries seen) a projector keeps between batches."""
ENTRIES_KEPT = 5_000
"""A kept view with more entries than this is dropped and read again when next needed."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_Call = tuple[scripts.ProjectKeys, list[scripts.Arg]]


class Unfoldable(Exception):
    """An event the fold cannot apply (a poison event): its story's projection stops before it."""

    def __init__(self, story: str, version: int, reason: str, event_type: str | None) -> None:
        super().__init__(f"{story} v{version}: {reason}")
        self.story, self.version, self.reason, self.event_type = story, version, reason, event_type


def _score(recorded_at: str | None) -> int:
    """A story's activity score: microseconds since the epoch, exact (below 2**53 for
    centuries)."""
    if not recorded_at:
        return 0
    return (datetime.fromisoformat(recorded_at) - _EPOCH) // timedelta(microseconds=1)


@dataclass(slots=True)
class _Loaded:
    version: int
    view: View
    loaded: Map[str, Entry]
    """The entries as read (or cached): an entry still identical to its loaded self is unchanged."""


class Projector:
    """Folds envelopes into the stored state of their stories, and emits their changes.

    A story's view is kept in memory after each write, so the next batch of that story reads
    nothing first; ``project.lua`` checks the stored version, so a view made stale by another
    projector costs one refused write and a fresh read, never a wrong state.
    """

    def __init__(self, client: Client, store: Store) -> None:
        self.client = client
        self.store = store
        self._script = Script(store.pipe, scripts.PROJECT)
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
                # a keyed placeholder where no entry is asked for (a cluster refuses keyless
                # commands in a pipeline): its answer, a number, is not a list, so it is skipped
                pipe.hmget(keys.entries(story), ids) if ids else pipe.hlen(keys.entries(story))
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
    ) -> list[Unfoldable]:
        """Fold a batch of envelopes (any stories, any order, duplicates allowed) into state;
        the events that could not be folded, one per story at most (nothing of their stories
        is acknowledged).

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
        poisoned: list[Unfoldable] = []
        for _attempt in range(20):
            if not pending:
                break
            pending = await self._project_once(pending, acks, poisoned)
        else:
            raise RuntimeError(f"projection of {sorted(pending)} kept racing another projector")
        held = {u.story for u in poisoned}
        left = {story: ids for story, ids in acks.items() if ids and story not in held}
        if left:  # events already applied before: nothing was written, so acknowledge them now
            async with self.client.pipeline(transaction=False) as pipe:
                for story, ids in left.items():
                    pipe.xack(keys.feed_of(story), GROUP, *ids)
                await pipe.execute()
        return poisoned

    async def _project_once(
        self,
        stories: dict[str, list[Envelope]],
        acks: dict[str, list[bytes]],
        poisoned: list[Unfoldable],
    ) -> dict[str, list[Envelope]]:
        loaded = await self._load(stories)
        retry: dict[str, list[Envelope]] = {}
        writes: list[tuple[str, int, View, _Call]] = []
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
            folded, poison = self._fold(story, current, fresh, acks.get(story, ()))
            if poison is not None:
                poisoned.append(poison)
            if folded is not None:
                view, call = folded
                writes.append((story, fresh[0].version, view, call))
        if writes:
            results = await self._write(writes)
            if faults.ARMED:  # a test's fault point: written and acknowledged, not yet settled
                faults.reached("projector.written")
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

    async def _write(self, writes: list[tuple[str, int, View, _Call]]) -> list[Any]:
        """Run ``project.lua`` for every story at once: the calls leave in one write on the
        store's auto-pipelined connection, so the server takes them in one turn."""
        return await self._script.many([call for _, _, _, call in writes])

    def _keep(self, story: str, view: View) -> None:
        if len(view.state.entries) > ENTRIES_KEPT:
            self._views.pop(story, None)
            return
        self._views[story] = _Loaded(view.state.version, view, view.state.entries)
        self._views.move_to_end(story)
        while len(self._views) > VIEWS_KEPT:
            self._views.popitem(last=False)

    def _fold(
        self, story: str, current: _Loaded, events: Sequence[Envelope], acks: Sequence[bytes]
    ) -> tuple[tuple[View, _Call] | None, Unfoldable | None]:
        """Fold ``events`` into the story's view: the view and the ``project.lua`` call that
        writes it and acknowledges ``acks`` (None if not even the first event folds), and the
        event that could not be folded, if one could not (then nothing is acknowledged)."""
        poison: Unfoldable | None = None
        view = current.view
        changes: list[scripts.Arg] = []
        index: list[str] = []
        members: list[str] = []
        marks: list[scripts.Arg] = []
        written: dict[str, bytes] = {}  # entry id -> its JSON after the last change that names it
        for envelope in events:
            try:
                view, change = step(view, envelope)
            except Exception as error:  # any failure of the pure fold is this event's
                reason = f"{type(error).__name__}: {error}"
                poison = Unfoldable(story, envelope.version, reason, envelope.type)
                acks = ()  # the story's feed entries stay pending: the consumers decide
                break
            entry_json = change["entry"]
            if isinstance(entry_json, dict):  # as readers get it: also the entries hash's value
                written[str(entry_json["entry_id"])] = orjson.dumps(entry_json)
            changes += [envelope.version, orjson.dumps(change)]
            entry_id = envelope.entry_id
            if entry_id is not None:
                index.append(entry_id)
                if envelope.type != "entry.published":  # that one is its score in `order`
                    members.append(f"{entry_id}:{envelope.version:012d}")
            if envelope.version % CHECKPOINT_EVERY == 0:
                marks += [envelope.version, checkpoint(view, envelope)]
        if poison is not None and view is current.view:
            return None, poison  # not even the first event folds: nothing to write
        state = view.state
        before = current.loaded
        touched = dict.fromkeys(index)  # the entries these events name, in order
        changed = [
            e for i in touched if (e := state.entries.get(i)) is not None and before.get(i) is not e
        ]  # never a scan of the whole story: a batch costs what its events touch
        entries: list[scripts.Arg] = []
        published: list[scripts.Arg] = []
        for entry in changed:
            entries += [
                entry.entry_id,
                written.get(entry.entry_id) or orjson.dumps(entry.to_json()),
            ]
            published += [entry.published_version, entry.entry_id]
        call = scripts.project(
            scripts.project_keys(story),
            from_version=current.version,
            to_version=state.version,
            meta_json=orjson.dumps(state.meta_json()),
            pinned=state.pinned or "",
            pinned_json=orjson.dumps(view.pinned) if view.pinned else "",
            key_events=orjson.dumps(list(view.key_events)),
            activity=_score(state.updated_at),
            story=story,
            changes=changes,
            entries=entries,
            published=published,
            index=members,
            checkpoints=marks,
            acks=acks,
        )
        return (view, call), poison


def checkpoint(view: View, envelope: Envelope) -> bytes:
    """The checkpoint of ``view`` at ``envelope``'s version: the view, its digest and the event's
    hash, so a replay can tell a damaged or stale checkpoint and pass it by."""
    body: dict[str, JsonValue] = {
        "meta": view.state.meta_json(),
        "pinned": view.pinned,
        "key_events": [*view.key_events],
    }
    return orjson.dumps(
        {
            "version": envelope.version,
            "event_hash": envelope.hash,
            "digest": hashlib.sha256(canonical(body)).hexdigest(),
            "view": body,
        }
    )
