"""The per-client backlog alone: what a client owes beyond its transport, and its budget."""

from __future__ import annotations

from services.realtime.backlog import Backlog


def test_frames_come_back_in_the_order_they_were_owed() -> None:
    """What is queued is handed over oldest first, and nothing is owed after."""
    backlog = Backlog(limit=100)
    for frame in (b"one", b"two", b"three"):
        assert backlog.queue(frame)
    assert backlog.owed == 11
    assert [backlog.next(), backlog.next(), backlog.next(), backlog.next()] == [
        b"one",
        b"two",
        b"three",
        None,
    ]
    assert backlog.owed == 0


def test_a_frame_past_the_budget_is_refused_and_not_queued() -> None:
    """Owing more than the budget is refused (the shell then closes with 1013)."""
    backlog = Backlog(limit=10)
    assert backlog.queue(b"x" * 10)
    assert not backlog.queue(b"y")
    assert backlog.owed == 10
    backlog.clear()
    assert backlog.owed == 0
    assert backlog.next() is None
