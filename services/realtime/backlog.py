"""What one client owes beyond its transport, and the budget that keeps it from stalling anyone.

Rules (CONTRACT.md "Websocket gateway": a client too slow to keep up is closed with 1013 and
resumes with ``since``; it never stalls others):
- while the transport takes frames (not paused) and nothing is owed, a frame goes straight to it;
  the shell checks that itself, so the live path costs a comparison and a write;
- otherwise the frame is queued here, in order, behind what is owed already;
- past ``MAX_BUFFER`` bytes owed, ``queue`` refuses: the shell drops the backlog and closes the
  client with 1013. The close frame then sits behind at most the transport's own ``WRITE_LIMIT``,
  so even a phone that wakes up late learns why it was cut off;
- when the transport resumes, the shell takes frames with ``next`` until it pauses again.
"""

from __future__ import annotations

from collections import deque

MAX_BUFFER = 1024 * 1024
"""Bytes of frames a client may owe beyond its transport before it is closed with 1013."""


class Backlog:
    """The frames one client owes, oldest first, and their size."""

    __slots__ = ("frames", "limit", "owed")

    def __init__(self, limit: int = MAX_BUFFER) -> None:
        self.frames: deque[bytes] = deque()
        self.owed = 0
        """Bytes queued and not yet handed to the transport (0: nothing owed)."""
        self.limit = limit

    def queue(self, frame: bytes) -> bool:
        """Owe one more frame; False (and nothing queued) once that would pass the budget."""
        if self.owed + len(frame) > self.limit:
            return False
        self.frames.append(frame)
        self.owed += len(frame)
        return True

    def next(self) -> bytes | None:
        """The oldest frame owed, now handed over; None when nothing is owed."""
        if not self.frames:
            return None
        frame = self.frames.popleft()
        self.owed -= len(frame)
        return frame

    def clear(self) -> None:
        """Forget everything owed (the client is closed, or gone)."""
        self.frames.clear()
        self.owed = 0
