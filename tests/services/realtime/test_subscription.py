"""The subscription core driven with inputs alone: no server, no event loop, no clock.

A small model of the store (a story's versions 1..head, with everything at or below ``trim`` no
longer kept) answers the core's reads; a model of the tail delivers the store's changes in order,
but may miss some (gaps), re-deliver others (duplicates) and, at the end, lose the last ones.
Hypothesis interleaves appends (some of changes big enough to pass ``MAX_PENDING``), trims, tail
deliveries, subscribers joining (with or without ``since``) and unsubscribing, reads performed at
one moment and answered or failed at a later one, partial fetches, and, as the gateway does,
joiners merging into the story's live group (``Subscription.joins``). Every subscriber must see
strictly consecutive versions after its snapshot or replay, nothing after a close, and never
wait forever: it is at the newest version it was told of, or has a read outstanding that, once
performed, brings it there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from services.realtime.subscription import (
    MAX_PENDING,
    MAX_REPLAY,
    STORE_AWAY,
    TOO_SLOW,
    Actions,
    Close,
    FetchChanges,
    Phase,
    ReadSnapshot,
    Refuse,
    Replay,
    Send,
    Subscription,
)
from tests.strategies import PROPERTIES

MANY = settings(PROPERTIES, max_examples=300)
PAD = b" " + b"x" * (MAX_PENDING // 3)
"""What makes a change big: three of them held back pass ``MAX_PENDING``."""


def change(version: int) -> bytes:
    return b"change %d" % version


def snapshot(version: int, reset: bool) -> bytes:
    return b"snapshot %d%s" % (version, b" reset" if reset else b"")


@dataclass
class Store:
    """A story's changes stream: versions 1..head, those at or below ``trim`` no longer kept."""

    head: int = 1
    trim: int = 0
    big: dict[int, bytes] = field(default_factory=dict)
    """The frames of the big changes, by version."""

    def frame(self, version: int) -> bytes:
        return self.big.get(version) or change(version)

    def after(self, version: int, limit: int | None = None) -> list[tuple[int, bytes]]:
        """The kept changes past ``version`` (at most ``limit``), as XRANGE would give them."""
        first = max(version, self.trim) + 1
        last = self.head if limit is None else min(self.head, first + limit - 1)
        return [(v, self.frame(v)) for v in range(first, last + 1)]


@dataclass(eq=False)
class Reader:
    """A core the shell performs reads for: one joiner's, or a live group's."""

    core: Subscription
    heard: int = 0
    """The newest version its inputs told it of (kept by the test, not read from the core)."""
    answer: Callable[[], tuple[Actions, int]] | None = None
    """A read performed (against the store as it was then) and not yet handed back, with the
    newest version its result tells of."""


@dataclass(eq=False)
class Watcher(Reader):
    """One subscriber: the frames it was sent, and its group once it is live."""

    since: int | None = None
    sent: list[Send] = field(default_factory=list)
    group: Group | None = None
    closed: Close | None = None
    gone: bool = False
    """Unsubscribed, or refused: nothing may reach it any more."""

    @property
    def last(self) -> int | None:
        return self.sent[-1].version if self.sent else self.since

    @property
    def speaker(self) -> Reader:
        """The core that decides for it: its group's once it is live."""
        return self.group if self.group is not None else self


@dataclass(eq=False)
class Group(Reader):
    """A story's live set: one core, its actions performed for every member."""

    members: list[Watcher] = field(default_factory=list)


def check_order(watcher: Watcher) -> None:
    """Every frame is the one of its version; changes follow one another by exactly one."""
    last: int | None = None
    for i, sent in enumerate(watcher.sent):
        if sent.frame.startswith(b"snapshot"):
            assert sent.frame.split()[1] == b"%d" % sent.version
            assert last is None or sent.version >= last, "a snapshot went back in time"
            assert (b"reset" in sent.frame) == (i > 0 or watcher.since is not None)
        else:
            assert sent.frame[len(change(sent.version)) :] in (b"", PAD)
            assert sent.frame.startswith(change(sent.version))
            if last is None:
                assert watcher.since is not None, "a change before the snapshot"
                assert sent.version == watcher.since + 1, "a replay that skipped"
            else:
                assert sent.version == last + 1, f"{last} then {sent.version}"
        last = sent.version


@dataclass
class World:
    """The store, the tail's queue, the subscribers and the live group, stepped by the test."""

    merging: bool
    """Whether joiners merge into a live group, as the gateway does (else each stays alone)."""
    store: Store = field(default_factory=Store)
    queued: list[int] = field(default_factory=list)
    """Versions the tail has yet to read, in order."""
    tail_top: int = 0
    """The newest version the tail delivered."""
    watchers: list[Watcher] = field(default_factory=list)
    group: Group | None = None
    flooded: bool = False

    def readers(self) -> list[Reader]:
        """The cores the shell speaks to: every open joiner alone, and the group."""
        alone: list[Reader] = [w for w in self.watchers if w.group is None and self.is_open(w)]
        return [*alone, self.group] if self.group is not None else alone

    @staticmethod
    def is_open(w: Watcher) -> bool:
        return w.closed is None and not w.gone

    def take(self, reader: Reader, actions: Actions) -> None:
        """Perform ``actions`` as the shell would, for a joiner or for every member of the group."""
        assert isinstance(reader, Group | Watcher)
        members = reader.members if isinstance(reader, Group) else [reader]
        for w in members:
            assert self.is_open(w) or not actions, "an action after a close"
        for action in actions:
            if isinstance(action, Send):
                reader.heard = max(reader.heard, action.version)
                for w in members:
                    w.sent.append(action)
                    check_order(w)
            elif isinstance(action, Close):
                assert action.code == 1013
                assert action.reason in (TOO_SLOW, STORE_AWAY)
                assert action.reason == STORE_AWAY or self.flooded, "too slow with no flood"
                for w in members:
                    w.closed = action
                if isinstance(reader, Group):
                    self.group = None
            elif isinstance(action, Refuse):
                assert isinstance(reader, Watcher)
                assert not reader.sent, "refused after it was sent something"
                reader.gone = True

    def merge(self) -> None:
        """What the gateway does after every input: joiners the core lets in go live."""
        if not self.merging:
            return
        for w in self.watchers:
            if w.group is not None or not self.is_open(w):
                continue
            live = w.core.joins(self.group.core if self.group is not None else None)
            if live is None:
                continue
            assert w.last == w.heard, "a joiner went live behind what it was told of"
            if self.group is None:
                assert live is not w.core
                self.group = Group(live, heard=live.version)
            assert live is self.group.core
            self.group.members.append(w)
            w.group = self.group

    def deliver(self, version: int) -> None:
        self.tail_top = max(self.tail_top, version)
        for reader in self.readers():
            reader.heard = max(reader.heard, version)
            self.take(reader, reader.core.delivered(version, self.store.frame(version)))
        self.merge()

    def perform(self, reader: Reader, limit: int | None) -> None:
        """Read what the core asked, against the store as it is now; hand it back later."""
        asked, core, store = reader.core.outstanding, reader.core, self.store
        if reader.answer is not None or asked is None:
            return
        if isinstance(asked, ReadSnapshot):
            version, reset = store.head, asked.reset
            reader.answer = lambda: (core.snapshot_read(version, snapshot(version, reset)), version)
        elif isinstance(asked, Replay):  # the changes now, the head when answered (as the shell)
            replay = store.after(asked.since, limit)
            reader.answer = lambda: (core.replayed(store.head, replay), store.head)
        else:
            after, changes = asked.after, store.after(asked.after, limit)
            told = changes[-1][0] if changes else 0
            reader.answer = lambda: (core.fetched(after, changes), told)

    def hand_back(self, reader: Reader) -> None:
        if reader.answer is not None:
            answer, reader.answer = reader.answer, None
            actions, told = answer()
            reader.heard = max(reader.heard, told)
            self.take(reader, actions)
            self.merge()

    def fail(self, reader: Reader, retries_left: int) -> None:
        """The read performed for ``reader`` failed instead of answering."""
        core = reader.core
        if core.outstanding is not None:
            reader.answer = None
            waiting = core.phase is Phase.WAITING
            actions = core.failed(retries_left)
            self.take(reader, actions)
            if not waiting and retries_left == 0:
                assert actions == (Close(1013, STORE_AWAY),), "a read retried past its retries"

    def unsubscribe(self, w: Watcher) -> None:
        if not self.is_open(w):
            return
        w.gone = True
        group = w.group
        if group is None:
            assert w.core.closed() == ()
            return
        group.members.remove(w)
        if not group.members:
            assert group.core.closed() == ()
            self.group = None

    def append(self, n: int, big: bool) -> None:
        """A run of ``n`` versions, one entry on the partition's stream."""
        store = self.store
        first = store.head + 1
        store.head += n
        self.queued += range(first, store.head + 1)
        if big:
            self.flooded = True
            store.big.update({v: change(v) + PAD for v in range(first, store.head + 1)})

    def step(self, move: tuple[str, int]) -> None:
        kind, n = move
        store = self.store
        readers = self.readers()
        reader = readers[n % len(readers)] if readers else None
        if kind == "append":
            self.append(max(1, n), big=False)
        elif kind == "flood":
            self.append(max(1, n), big=True)
        elif kind == "trim":
            store.trim = max(store.trim, min(store.head - 1, store.trim + abs(n)))
        elif kind == "tail" and self.queued:
            self.deliver(self.queued.pop(0))
        elif kind == "miss" and self.queued:
            self.queued.pop(0)
        elif kind == "again":
            self.deliver(max(1, store.head - len(self.queued) - abs(n)))
        elif kind == "join":
            since = None if n < 0 else max(0, store.head + 2 - n)
            w = Watcher(Subscription(), since=since)
            self.watchers.append(w)
            self.take(w, w.core.start(since))
        elif kind == "close" and self.watchers:
            self.unsubscribe(self.watchers[n % len(self.watchers)])
        elif kind == "perform" and reader is not None:
            self.perform(reader, None if n < 3 else n - 2)
        elif kind == "answer" and reader is not None:
            self.hand_back(reader)
        elif kind == "fail" and reader is not None:
            self.fail(reader, n % 4)

    def settle(self, lost: int | None) -> None:
        """Inputs stop: the tail reads what is left, or loses its last ``lost`` entries; then the
        shell performs every outstanding read, and the tail delivers nothing more."""
        kept = len(self.queued) if lost is None else max(0, len(self.queued) - lost)
        for version in self.queued[:kept]:
            self.deliver(version)
        self.queued = []
        for w in self.watchers:
            if self.is_open(w):
                speaker = w.speaker
                assert w.last == speaker.heard or speaker.core.outstanding is not None, (
                    f"waits forever at {w.last}, told of {speaker.heard}"
                )
        for _ in range(self.store.head + 10):
            busy = [r for r in self.readers() if r.core.outstanding is not None]
            if not busy:
                return
            for reader in busy:
                if reader in self.readers():
                    self.perform(reader, None)
                    self.hand_back(reader)
        raise AssertionError("the reads never ended")

    def check_settled(self) -> None:
        """Every open subscriber is at what it was told of; at the head if the tail brought it."""
        for w in self.watchers:
            if not self.is_open(w):
                continue
            assert w.speaker.core.settled
            assert w.last == w.speaker.heard
            if self.tail_top == self.store.head:
                assert w.last == self.store.head, f"at {w.last}, the head is {self.store.head}"


MOVES = (
    *("append",) * 3,
    *("flood", "trim"),
    *("tail",) * 4,
    *("miss", "miss", "again"),
    *("join",) * 2,
    "close",
    *("perform",) * 4,
    *("answer",) * 4,
    "fail",
)
"""What can happen next (more often for some), each with a number: a run's length, how far to
trim, how far back to re-deliver, the ``since`` to join with, which subscriber, a fetch's limit,
the retries a failed read has left."""

moves = st.lists(st.tuples(st.sampled_from(MOVES), st.integers(-1, 6)), min_size=20, max_size=120)
lost = st.none() | st.integers(0, 6)
"""How many of the tail's last entries it loses at the end (None: it reads them all)."""


@MANY
@given(moves, lost)
def test_every_subscriber_sees_consecutive_versions_and_never_waits_forever(
    script: list[tuple[str, int]], lost: int | None
) -> None:
    """Any interleaving of appends, trims, gaps, duplicates, joins, closes, floods, failed and
    partial reads, the tail perhaps losing its last changes: no gap, no duplicate, nothing after
    a close; each subscriber is at what it was told of or has a read that brings it there."""
    world = World(merging=False)
    for move in script:
        world.step(move)
    world.settle(lost)
    world.check_settled()


@MANY
@given(moves, lost)
def test_joiners_merged_into_the_live_set_while_changes_flow_see_consecutive_versions(
    script: list[tuple[str, int]], lost: int | None
) -> None:
    """Joiners go live when ``Subscription.joins`` says so, while changes flow: each live
    client still sees strictly consecutive versions, and no one waits forever."""
    world = World(merging=True)
    for move in script:
        world.step(move)
    world.settle(lost)
    world.check_settled()


@MANY
@given(moves)
def test_a_subscriber_past_the_budget_is_closed_1013_and_sent_nothing_after(
    script: list[tuple[str, int]],
) -> None:
    """A flood of big changes while subscribers fill holes: each one closed got 1013 and
    nothing more, and the others still end at the head."""
    world = World(merging=True)
    for move in [*script, ("join", -1), ("flood", 3), ("tail", 0), ("tail", 0), ("tail", 0)]:
        world.step(move)
    world.settle(None)
    world.check_settled()
    flooded = world.watchers[-1]
    assert flooded.closed == Close(1013, TOO_SLOW), "held three big changes and was not closed"
    assert not flooded.sent


def synced(version: int) -> Subscription:
    core = Subscription()
    core.start()
    core.snapshot_read(version, snapshot(version, False))
    return core


def test_a_subscriber_asks_for_its_snapshot_and_holds_changes_until_it_comes() -> None:
    """Changes that arrive while the snapshot is read wait, and follow it without a duplicate."""
    core = Subscription()
    assert core.start() == (ReadSnapshot(reset=False),)
    assert core.delivered(5, change(5)) == ()
    assert core.delivered(6, change(6)) == ()
    assert core.snapshot_read(5, snapshot(5, False)) == (
        Send(snapshot(5, False), 5),
        Send(change(6), 6),
    )
    assert core.settled


def test_a_live_subscriber_asks_for_a_hole_the_tail_left() -> None:
    """A live subscriber that is handed version 9 at version 7 fetches after 7, at any time."""
    core = synced(7)
    assert core.delivered(8, change(8)) == (Send(change(8), 8),)
    assert core.delivered(10, change(10)) == (FetchChanges(after=8),)
    assert core.delivered(11, change(11)) == ()
    assert core.fetched(8, [(9, change(9)), (10, change(10))]) == (
        Send(change(9), 9),
        Send(change(10), 10),
        Send(change(11), 11),
    )
    assert core.settled


def test_a_fetch_that_cannot_fill_the_hole_gets_a_reset_snapshot() -> None:
    """When the changes stream no longer holds the missing version, a reset snapshot follows."""
    core = synced(3)
    assert core.delivered(9, change(9)) == (FetchChanges(after=3),)
    assert core.fetched(3, [(7, change(7)), (8, change(8)), (9, change(9))]) == (
        ReadSnapshot(reset=True),
    )
    assert core.snapshot_read(9, snapshot(9, True)) == (Send(snapshot(9, True), 9),)
    assert core.settled


def test_a_partial_fetch_asks_again_from_where_it_stopped() -> None:
    """A fetch that advances but does not reach the head asks for the rest."""
    core = synced(1)
    core.delivered(5, change(5))
    assert core.fetched(1, [(2, change(2))]) == (Send(change(2), 2), FetchChanges(after=2))


def test_a_since_at_the_head_sends_nothing_and_is_live() -> None:
    """``since`` equal to the story's version: nothing is sent, the next change is."""
    core = Subscription()
    assert core.start(4) == (Replay(since=4),)
    assert core.replayed(4, []) == ()
    assert core.delivered(5, change(5)) == (Send(change(5), 5),)


def test_a_since_ahead_of_the_story_or_no_longer_kept_gets_a_reset_snapshot() -> None:
    """``since`` beyond the head, or older than the first kept change, answers with a reset."""
    ahead, old = Subscription(), Subscription()
    ahead.start(9)
    assert ahead.replayed(4, []) == (ReadSnapshot(reset=True),)
    old.start(2)
    assert old.replayed(1500, [(501, change(501))]) == (ReadSnapshot(reset=True),)


def test_a_since_replays_exactly_the_missing_versions() -> None:
    """``since`` 3 with the head at 5 sends 4 and 5, then is live."""
    core = Subscription()
    core.start(3)
    assert core.replayed(5, [(4, change(4)), (5, change(5))]) == (
        Send(change(4), 4),
        Send(change(5), 5),
    )
    assert core.settled


def test_holding_more_than_the_budget_closes_with_1013() -> None:
    """A subscriber whose held-back changes pass the budget is closed, to resume with since."""
    core = synced(1)
    big = b"x" * (MAX_PENDING // 2)
    assert core.delivered(3, big) == (FetchChanges(after=1),)
    assert core.delivered(4, big) == ()
    assert core.delivered(5, big) == (Close(1013, "too slow: resume with since"),)
    assert core.fetched(1, [(2, change(2))]) == ()


def test_a_closed_subscriber_ignores_every_later_input() -> None:
    """After a close, neither the tail nor a late read result sends anything."""
    core = Subscription()
    core.start()
    core.closed()
    assert core.delivered(2, change(2)) == ()
    assert core.snapshot_read(2, snapshot(2, False)) == ()


def test_a_hole_a_fresh_snapshot_cannot_fill_is_not_read_again_in_a_loop() -> None:
    """Should a store's snapshot be behind a change the tail delivered, it is believed once."""
    core = synced(3)
    assert core.delivered(9, change(9)) == (FetchChanges(after=3),)
    assert core.fetched(3, []) == (ReadSnapshot(reset=True),)
    assert core.snapshot_read(3, snapshot(3, True)) == (
        Send(snapshot(3, True), 3),
        FetchChanges(after=3),
    )
    assert core.fetched(3, []) == ()
    assert core.settled
    assert core.delivered(4, change(4)) == (Send(change(4), 4),)


def test_a_since_further_behind_than_a_replay_goes_gets_a_reset_snapshot() -> None:
    """``since`` more than ``MAX_REPLAY`` behind the head is answered with a reset snapshot."""
    sub = Subscription()
    assert sub.start(since=1) == (Replay(since=1),)
    kept = [(v, b"c%d" % v) for v in range(2, 2 + MAX_REPLAY)]
    assert sub.replayed(2 + MAX_REPLAY, kept) == (ReadSnapshot(reset=True),)


def test_a_joiner_joins_the_live_set_only_when_settled_at_its_version() -> None:
    """A joiner still reading, or at another version than the group, goes on alone."""
    group, joiner = synced(4), Subscription()
    joiner.start()
    assert joiner.joins(group) is None
    joiner.snapshot_read(5, snapshot(5, False))
    assert joiner.joins(group) is None
    group.delivered(5, change(5))
    assert joiner.joins(group) is group
    founded = joiner.joins(None)
    assert founded is not None
    assert founded.version == 5


def test_a_failed_read_refuses_a_joiner_and_retries_then_closes_a_synced_one() -> None:
    """Sent nothing yet: refused. Already synced: the read again while retries last, then 1013."""
    joiner = Subscription()
    joiner.start()
    assert joiner.failed(3) == (Refuse(),)
    assert joiner.delivered(1, change(1)) == ()
    core = synced(3)
    assert core.delivered(5, change(5)) == (FetchChanges(after=3),)
    assert core.failed(1) == (FetchChanges(after=3),)
    assert core.failed(0) == (Close(1013, STORE_AWAY),)
    assert core.fetched(3, [(4, change(4)), (5, change(5))]) == ()
