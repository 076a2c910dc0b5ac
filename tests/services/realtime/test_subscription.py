"""The subscription core driven with inputs alone: no server, no event loop, no clock.

A small model of the store (a story's versions 1..head, with everything at or below ``trim`` no
longer kept) answers the core's reads; a model of the tail delivers the store's changes in order,
but may miss some (gaps) and re-deliver others (duplicates). Hypothesis interleaves appends,
trims, tail deliveries, subscribers joining (with or without ``since``), reads performed at one
moment and answered at a later one, and partial fetches; every subscriber must see strictly
consecutive versions after its snapshot or replay, and never wait forever.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from hypothesis import given
from hypothesis import strategies as st

from services.realtime.subscription import (
    MAX_PENDING,
    MAX_REPLAY,
    STORE_AWAY,
    Actions,
    Close,
    FetchChanges,
    ReadSnapshot,
    Refuse,
    Replay,
    Send,
    Subscription,
)
from tests.strategies import PROPERTIES


def change(version: int) -> bytes:
    return b"change %d" % version


def snapshot(version: int, reset: bool) -> bytes:
    return b"snapshot %d%s" % (version, b" reset" if reset else b"")


@dataclass
class Store:
    """A story's changes stream: versions 1..head, those at or below ``trim`` no longer kept."""

    head: int = 1
    trim: int = 0

    def after(self, version: int, limit: int | None = None) -> list[tuple[int, bytes]]:
        """The kept changes past ``version`` (at most ``limit``), as XRANGE would give them."""
        first = max(version, self.trim) + 1
        last = self.head if limit is None else min(self.head, first + limit - 1)
        return [(v, change(v)) for v in range(first, last + 1)]


@dataclass
class Watcher:
    """One subscriber: its core, the frames it was sent, and the read the shell is performing."""

    core: Subscription
    since: int | None
    sent: list[Send] = field(default_factory=list)
    answer: Callable[[], Actions] | None = None
    """A read performed (against the store as it was then) and not yet handed back."""
    closed: bool = False

    def take(self, actions: Actions) -> None:
        for action in actions:
            if isinstance(action, Send):
                self.sent.append(action)
            elif isinstance(action, Close):
                self.closed = True
        check_order(self)


def check_order(watcher: Watcher) -> None:
    """Every frame is the one of its version; changes follow one another by exactly one."""
    last: int | None = None
    for i, sent in enumerate(watcher.sent):
        if sent.frame.startswith(b"snapshot"):
            assert sent.frame.split()[1] == b"%d" % sent.version
            assert last is None or sent.version >= last, "a snapshot went back in time"
            assert (b"reset" in sent.frame) == (i > 0 or watcher.since is not None)
        else:
            assert sent.frame == change(sent.version)
            if last is None:
                assert watcher.since is not None, "a change before the snapshot"
                assert sent.version == watcher.since + 1, "a replay that skipped"
            else:
                assert sent.version == last + 1, f"{last} then {sent.version}"
        last = sent.version


@dataclass
class World:
    """The store, the tail's queue, and the subscribers, stepped by the test."""

    store: Store = field(default_factory=Store)
    queued: list[int] = field(default_factory=list)
    """Versions the tail has yet to read, in order."""
    watchers: list[Watcher] = field(default_factory=list)

    def deliver(self, version: int) -> None:
        for w in self.watchers:
            w.take(w.core.delivered(version, change(version)))

    def perform(self, w: Watcher, limit: int | None) -> None:
        """Read what the core asked, against the store as it is now; hand it back later."""
        asked, core, store = w.core.outstanding, w.core, self.store
        if w.answer is not None or asked is None:
            return
        if isinstance(asked, ReadSnapshot):
            version, reset = store.head, asked.reset
            w.answer = lambda: core.snapshot_read(version, snapshot(version, reset))
        elif isinstance(asked, Replay):  # the changes now, the head when answered (as the shell)
            replay = store.after(asked.since, limit)
            w.answer = lambda: core.replayed(store.head, replay)
        else:
            after, changes = asked.after, store.after(asked.after, limit)
            w.answer = lambda: core.fetched(after, changes)

    def hand_back(self, w: Watcher) -> None:
        if w.answer is not None:
            answer, w.answer = w.answer, None
            w.take(answer())

    def step(self, move: tuple[str, int]) -> None:
        kind, n = move
        store = self.store
        if kind == "append":  # a run of n versions, one entry on the partition's stream
            n = max(1, n)
            self.queued += range(store.head + 1, store.head + n + 1)
            store.head += n
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
            w = Watcher(Subscription(), since)
            self.watchers.append(w)
            w.take(w.core.start(since))
        elif kind == "perform" and self.watchers:
            self.perform(self.watchers[n % len(self.watchers)], None if n < 3 else n - 2)
        elif kind == "answer" and self.watchers:
            self.hand_back(self.watchers[n % len(self.watchers)])

    def settle(self) -> None:
        """Inputs stop: the tail reads what is left (at least the newest change, as the real tail
        does once it reads every entry), and the shell performs every outstanding read."""
        while self.queued:
            self.deliver(self.queued.pop(0))
        self.deliver(self.store.head)
        for _ in range(self.store.head + 10):
            busy = False
            for w in self.watchers:
                if w.core.outstanding is not None:
                    busy = True
                    self.perform(w, None)
                    self.hand_back(w)
            if not busy:
                return
        raise AssertionError("the reads never ended")


MOVES = (
    *("append", "append", "trim"),
    *("tail", "tail", "miss", "again"),
    *("join", "perform", "perform", "answer", "answer"),
)
"""What can happen next (twice as often for some), each with a number: a run's length, how far
to trim, how far back to re-deliver, the ``since`` to join with, which subscriber, a fetch's limit."""

moves = st.lists(
    st.tuples(
        st.sampled_from(MOVES),
        st.integers(-1, 6),
    ),
    max_size=60,
)


@PROPERTIES
@given(moves)
def test_every_subscriber_sees_consecutive_versions_and_ends_at_the_head(
    script: list[tuple[str, int]],
) -> None:
    """Any interleaving of appends, trims, gaps, duplicates, joins and reads: no gap, no
    duplicate, and once inputs stop every subscriber is at the head."""
    world = World()
    for move in script:
        world.step(move)
    world.settle()
    for w in world.watchers:
        assert not w.closed
        assert w.core.settled
        assert (w.sent[-1].version if w.sent else w.since) == world.store.head


@PROPERTIES
@given(moves, st.integers(0, 6))
def test_a_subscriber_that_stops_anywhere_has_a_read_to_perform_or_is_at_what_it_knows(
    script: list[tuple[str, int]], extra: int
) -> None:
    """Wherever the inputs stop, a subscriber is at the newest version it has heard of, or the
    shell holds a read to perform for it: nothing is left waiting for an input that never comes."""
    world = World()
    for move in [*script, ("append", extra), ("tail", 0)]:
        world.step(move)
    for w in world.watchers:
        core = w.core
        assert w.closed or core.outstanding is not None or core.version == core.head


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
