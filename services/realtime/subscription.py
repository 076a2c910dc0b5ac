"""One subscriber of one story, as a state machine without I/O: the gateway's ordering rules.

The shell (``services.realtime.gateway``) feeds it inputs and performs the actions it returns;
nothing here reads Redis, writes a socket, awaits or reads the clock, so the rules below can be
proved by driving it with any interleaving (tests/services/realtime/test_subscription.py), as
websockets' ``Protocol`` is driven with bytes alone.

Inputs (methods) and the actions they return (CONTRACT.md "Websocket gateway"):

    input                                   state after              actions
    start(since=None)                       WAITING                  ReadSnapshot(reset=False)
    start(since=N)                          WAITING                  Replay(since=N)
    delivered(v, frame)  (from the tail)    any                      rules 2, 4, 6, 7
    snapshot_read(v, frame)                 SYNCED at v              Send(snapshot), then drain
    replayed(head, changes)                 SYNCED, or WAITING       Send(each), then drain;
                                                                     or ReadSnapshot(reset=True)
    fetched(after, changes)                 SYNCED                   Send(each), then drain; or
                                                                     ReadSnapshot(reset=True)
    failed(retries_left)  (a read failed)   CLOSED, or SYNCED        Refuse() if it was WAITING;
                                                                     else the read again, or
                                                                     Close(1013) at 0 left
    closed()                                CLOSED                   nothing, ever after
    joins(live)  (a question, no input)     unchanged                the live group, or None

Rules:
1. Register before the read. The machine exists (and the shell routes the tail's changes to it)
   before its snapshot or replay is read; changes that arrive meanwhile wait in ``pending``, so
   nothing between the read and the first live change is lost.
2. Strictly consecutive. Once SYNCED at version V, the only change ever sent is V+1; a change at
   or below V is a duplicate (a tail re-reading, a fetch overlapping the tail) and is dropped; a
   change beyond V+1 waits in ``pending``. A snapshot resets V to its own version.
3. ``since``: N == head sends nothing and is live; N beyond the head, more than
   ``MAX_REPLAY`` behind it (one snapshot is cheaper than a long replay), or older than the
   changes stream keeps (its first kept change is not N+1), gets a snapshot with
   ``reset: true``; otherwise N+1 .. are sent in order, and the rest is filled as a hole (rule 4).
4. Holes are filled at any time, not only while joining: whenever SYNCED at V, nothing
   outstanding, and a change beyond V is known (one waits in ``pending``, or a read said the
   head is past V), it asks ``FetchChanges(after=V)``. At most one action is outstanding; changes
   that arrive meanwhile wait (rule 1), so a live subscriber is either at the head or has an
   action the shell will perform: it never waits forever.
5. A fetch that does not advance (its first change is not V+1: the stream was trimmed past V) is
   answered with ``ReadSnapshot(reset=True)``, never with waiting; a fetch that advances but
   leaves a hole asks again from where it stopped, so filling always ends. A snapshot is at or
   past every change the tail delivered (the projector writes both in one script); should a
   store say otherwise (a fetch right after a reset snapshot still cannot fill), the snapshot is
   believed and the changes beyond it forgotten, rather than reading snapshots in a loop.
6. Bounded. Changes waiting in ``pending`` past ``MAX_PENDING`` bytes close the subscriber with
   1013 (the contract's "too slow", resumed with ``since``); the bytes a client owes its
   transport are bounded the same way by ``services.realtime.backlog``.
7. The live path is one comparison: SYNCED, nothing outstanding, and v == V + 1.
8. Joining the live set. A story's live subscribers share one machine (the group). A joiner
   joins it once it is settled (SYNCED, nothing outstanding, so nothing it knows of is unsent)
   at the group's version; with no group yet, it founds one at its own version. Before that it
   goes on alone: a joiner behind or ahead of the group would otherwise be sent a change twice
   or skip one. Both are SYNCED at V and sent nothing past it, so from the merge on the
   group's V+1 is exactly what each member needs next.
9. A read that fails. A subscriber sent nothing yet (WAITING) is refused (``Refuse``: the shell
   sends the error as its answer to the subscribe and forgets it), since its client sees one
   error frame and may simply subscribe again. One already SYNCED has a client relying on it:
   the read is asked again while retries are left (the shell pauses between attempts), then it
   is closed with 1013 and ``STORE_AWAY``, to resume with ``since`` once the store is back.

A result that does not answer the outstanding action (the subscriber was reset, or closed, since
the shell started it) is ignored.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

TRY_AGAIN_LATER = 1013
"""The close code for a client too slow to keep up (RFC 6455 7.4.1; CONTRACT: resume with since)."""
MAX_REPLAY = 2_000
"""A ``since`` further behind the head than this gets a reset snapshot (docs/contract-extensions.md)."""
MAX_PENDING = 1024 * 1024
"""Bytes of changes one subscriber may hold back while it fills a hole before it is closed."""
TOO_SLOW = "too slow: resume with since"
STORE_AWAY = "store unavailable: resume with since"

Change = tuple[int, bytes]
"""One change as the shell hands it in: (version, framed bytes)."""


@dataclass(frozen=True, slots=True)
class Send:
    """Write ``frame`` (a whole websocket frame) to the subscriber; it is then at ``version``."""

    frame: bytes
    version: int


@dataclass(frozen=True, slots=True)
class ReadSnapshot:
    """Read the story's first page and hand it to ``snapshot_read`` (``reset`` goes in the frame)."""

    reset: bool


@dataclass(frozen=True, slots=True)
class Replay:
    """Read the kept changes after ``since`` and the head; hand both to ``replayed``."""

    since: int


@dataclass(frozen=True, slots=True)
class FetchChanges:
    """Read the kept changes after version ``after``; hand them to ``fetched``."""

    after: int


@dataclass(frozen=True, slots=True)
class Close:
    """Close the subscriber's connection (CONTRACT: a client too slow is closed with 1013)."""

    code: int = TRY_AGAIN_LATER
    reason: str = TOO_SLOW


@dataclass(frozen=True, slots=True)
class Refuse:
    """Answer the subscribe with the read's error as an error frame, and forget the subscriber."""


Read = ReadSnapshot | Replay | FetchChanges
"""An action the shell performs asynchronously and answers with a result."""
Action = Send | Read | Close | Refuse
Actions = tuple[Action, ...]

NOTHING: Actions = ()


class Phase(enum.Enum):
    WAITING = "waiting"
    """Registered; its first snapshot or replay is being read."""
    SYNCED = "synced"
    """Its version is known; it is at the head, or has a read outstanding."""
    CLOSED = "closed"


class Subscription:
    """The rules of one subscriber of one story (the module docstring), one input at a time."""

    __slots__ = ("head", "outstanding", "pending", "pending_bytes", "phase", "reset_at", "version")

    def __init__(self) -> None:
        self.phase = Phase.WAITING
        self.version = 0
        """The last version sent (meaningful once SYNCED)."""
        self.head = 0
        """The highest version known to exist (from the tail, a read, or a replay's head)."""
        self.pending: dict[int, bytes] = {}
        """Changes beyond ``version + 1`` (or, while WAITING, any), waiting for their turn."""
        self.pending_bytes = 0
        self.outstanding: Read | None = None
        """The one read the shell is performing for it, if any."""
        self.reset_at = -1
        """The version of the reset snapshot it was sent last, while it is still there (rule 5)."""

    @classmethod
    def at(cls, version: int) -> Subscription:
        """A subscriber already SYNCED at ``version`` with nothing outstanding (a live group)."""
        subscription = cls()
        subscription.phase = Phase.SYNCED
        subscription.version = subscription.head = version
        return subscription

    @property
    def settled(self) -> bool:
        """SYNCED with nothing outstanding: it has sent everything it knows of."""
        return self.phase is Phase.SYNCED and self.outstanding is None

    def joins(self, live: Subscription | None) -> Subscription | None:
        """Rule 8: the live group this joiner now belongs to (``live``, or a new one at its
        version when there is none), or None while it must go on alone."""
        if not self.settled or (live is not None and live.version != self.version):
            return None
        return live if live is not None else Subscription.at(self.version)

    # -- inputs --------------------------------------------------------------------------------

    def start(self, since: int | None = None) -> Actions:
        """Begin: read a snapshot, or replay from ``since`` (rule 1: it is registered already)."""
        if self.phase is not Phase.WAITING or self.outstanding is not None:
            return NOTHING
        return self._ask(ReadSnapshot(reset=False) if since is None else Replay(since))

    def delivered(self, version: int, frame: bytes) -> Actions:
        """A change from the tail (rules 2, 4, 7)."""
        if version == self.version + 1 and self.outstanding is None and self.phase is Phase.SYNCED:
            self.version = self.head = version
            return (Send(frame, version),)
        if self.phase is Phase.CLOSED:
            return NOTHING
        if version > self.head:
            self.head = version
        if self.phase is Phase.SYNCED and version <= self.version:
            return NOTHING  # a duplicate
        self.reset_at = -1  # news since the last snapshot: a hole is worth a snapshot again
        if not self._hold(version, frame):
            return self._close()
        return self._fill() if self.outstanding is None else NOTHING

    def snapshot_read(self, version: int, frame: bytes) -> Actions:
        """The answer to ``ReadSnapshot``: the snapshot frame of ``version`` (rule 2)."""
        if not isinstance(self.outstanding, ReadSnapshot) or self.phase is Phase.CLOSED:
            return NOTHING
        self.reset_at = version if self.outstanding.reset else -1
        self.outstanding = None
        self.phase = Phase.SYNCED
        self.version = version
        self.head = max(self.head, version)
        self._forget_through(version)
        return (Send(frame, version), *self._drain(), *self._fill())

    def replayed(self, head: int, changes: Sequence[Change]) -> Actions:
        """The answer to ``Replay``: the story's head and its kept changes after ``since`` (rule 3)."""
        asked = self.outstanding
        if not isinstance(asked, Replay) or self.phase is Phase.CLOSED:
            return NOTHING
        self.outstanding = None
        since = asked.since
        self.head = max(self.head, head)
        if (
            since > head
            or head - since > MAX_REPLAY
            or (since < head and not self._starts_at(changes, since + 1))
        ):
            return self._ask(ReadSnapshot(reset=True))  # ahead, too far behind, or not kept
        self.phase = Phase.SYNCED
        self.version = since
        self._forget_through(since)
        return self._take(changes)

    def fetched(self, after: int, changes: Sequence[Change]) -> Actions:
        """The answer to ``FetchChanges(after)``: the kept changes after ``after`` (rules 4, 5)."""
        asked = self.outstanding
        if not isinstance(asked, FetchChanges) or asked.after != after:
            return NOTHING
        self.outstanding = None
        if not self._starts_at(changes, self.version + 1) and self.version + 1 not in self.pending:
            if self.version == self.reset_at:  # a fresh snapshot says this is the head: believe it
                self._forget_through(self.head)
                self.head = self.version
                return NOTHING
            return self._ask(ReadSnapshot(reset=True))  # trimmed past the hole: start over
        return self._take(changes)

    def failed(self, retries_left: int) -> Actions:
        """The outstanding read failed (rule 9): refuse, ask it again, or close with 1013."""
        asked = self.outstanding
        if asked is None or self.phase is Phase.CLOSED:
            return NOTHING
        if self.phase is Phase.WAITING:
            self.closed()
            return (Refuse(),)
        if retries_left > 0:
            return (asked,)
        self.closed()
        return (Close(TRY_AGAIN_LATER, STORE_AWAY),)

    def closed(self) -> Actions:
        """The connection went away, or the subscriber unsubscribed: nothing more, ever."""
        self.phase = Phase.CLOSED
        self.outstanding = None
        self.pending.clear()
        self.pending_bytes = 0
        return NOTHING

    # -- the rules -----------------------------------------------------------------------------

    def _ask(self, read: Read) -> Actions:
        self.outstanding = read
        return (read,)

    def _close(self) -> Actions:
        self.closed()
        return (Close(),)

    @staticmethod
    def _starts_at(changes: Sequence[Change], version: int) -> bool:
        """Whether ``changes`` hold ``version`` (they may begin earlier: a run's first entry)."""
        return any(v == version for v, _ in changes)

    def _hold(self, version: int, frame: bytes) -> bool:
        """Keep a change for later; False once past the budget (rule 6)."""
        if version not in self.pending:
            self.pending[version] = frame
            self.pending_bytes += len(frame)
        return self.pending_bytes <= MAX_PENDING

    def _forget_through(self, version: int) -> None:
        for v in [v for v in self.pending if v <= version]:
            self.pending_bytes -= len(self.pending.pop(v))

    def _take(self, changes: Sequence[Change]) -> Actions:
        """Send ``changes`` past the version in order, then whatever waits after them."""
        sent: list[Action] = []
        for version, frame in changes:
            if version > self.head:
                self.head = version
            if version == self.version + 1:
                self.version = version
                sent.append(Send(frame, version))
            elif version > self.version + 1 and not self._hold(version, frame):
                return self._close()
        self._forget_through(self.version)
        return (*sent, *self._drain(), *self._fill())

    def _drain(self) -> list[Action]:
        """Send the waiting changes that now follow on, in order."""
        sent: list[Action] = []
        pending = self.pending
        while (frame := pending.pop(self.version + 1, None)) is not None:
            self.version += 1
            self.pending_bytes -= len(frame)
            sent.append(Send(frame, self.version))
        return sent

    def _fill(self) -> Actions:
        """Rule 4: a SYNCED subscriber behind a change it knows of asks for the hole."""
        if self.phase is not Phase.SYNCED or self.outstanding is not None:
            return NOTHING
        if self.head > self.version:
            return self._ask(FetchChanges(after=self.version))
        return NOTHING
