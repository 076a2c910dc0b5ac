"""What one client owes beyond its transport, and the budget that keeps it from stalling anyone.

Rules (CONTRACT.md "Websocket gateway": a client too slow to keep up is closed with 1013 and
resumes with ``since``; it never stalls others):
- while the transport takes frames (not paused) and nothing is owed, a frame goes straight to it;
  the shell checks that itself, so the live path costs a comparison and a write;
- otherwise the frame is queued here, in order, behind what is owed already, as one of two kinds:
  - live (``queue``): a change the client is sent because it happened. Past ``MAX_BUFFER`` bytes
    of live frames owed, ``queue`` refuses: the client is not keeping up with the story, so the
    shell drops the backlog and closes it with 1013. The close frame then sits behind at most the
    transport's own ``WRITE_LIMIT``, so even a phone that wakes up late learns why it was cut off
    (within the gateway's ``CLOSE_TIMEOUT``; after it, the connection is dropped);
  - on credit (``owe``): history the client asked for (its snapshot, its ``since`` replay, the
    hole a joiner fills). It is never refused and never counts against the budget: a replay
    larger than ``MAX_BUFFER`` is not slowness, it is what was asked. It is paced instead: the
    shell reads the next piece of history only once the credit owed has gone to the transport
    (``credit`` is 0), so credit holds about one read, and a client that takes nothing from its
    transport for ``STALL_TIMEOUT`` while it owes anything is closed with 1013;
- when the transport resumes, the shell takes frames with ``next`` until it pauses again.

No I/O here: the shell (``services.realtime.gateway``) owns the transport, the clock and the
close; this keeps the count.
"""

from __future__ import annotations

from collections import deque

MAX_BUFFER = 1024 * 1024
"""Bytes of live frames a client may owe beyond its transport before it is closed with 1013."""
STALL_TIMEOUT = 10.0
"""Seconds a client that owes frames may take nothing from its transport before it is closed with
1013: what bounds credit, which the budget does not (half the keep-alive's ping timeout)."""


class Backlog:
    """The frames one client owes, oldest first, and their size: all of it, and the live part."""

    __slots__ = ("frames", "limit", "owed", "owed_live")

    def __init__(self, limit: int = MAX_BUFFER) -> None:
        self.frames: deque[tuple[bytes, bool]] = deque()
        """(frame, live) in the order they are owed."""
        self.owed = 0
        """Bytes queued and not yet handed to the transport (0: nothing owed)."""
        self.owed_live = 0
        """The part of ``owed`` that is live frames: what the budget counts."""
        self.limit = limit

    @property
    def credit(self) -> int:
        """Bytes owed on credit (history asked for) and not yet handed to the transport."""
        return self.owed - self.owed_live

    def queue(self, frame: bytes) -> bool:
        """Owe one more live frame; False (and nothing queued) once that would pass the budget."""
        if self.owed_live + len(frame) > self.limit:
            return False
        self.frames.append((frame, True))
        self.owed += len(frame)
        self.owed_live += len(frame)
        return True

    def owe(self, frame: bytes) -> None:
        """Owe one more frame on credit: history the client asked for, never refused."""
        self.frames.append((frame, False))
        self.owed += len(frame)

    def next(self) -> bytes | None:
        """The oldest frame owed, now handed over; None when nothing is owed."""
        if not self.frames:
            return None
        frame, live = self.frames.popleft()
        self.owed -= len(frame)
        if live:
            self.owed_live -= len(frame)
        return frame

    def clear(self) -> None:
        """Forget everything owed (the client is closed, or gone)."""
        self.frames.clear()
        self.owed = self.owed_live = 0
