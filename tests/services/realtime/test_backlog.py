"""The per-client backlog alone: what a client owes beyond its transport, and its budget.

No server, no event loop: the backlog is pure (its module's rules); the shell's pacing and stall
rule are tested on a real gateway (tests/contract/test_subscribers.py).
"""

from __future__ import annotations

from collections import deque

from hypothesis import given, settings
from hypothesis import strategies as st

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


def test_a_live_frame_past_the_budget_is_refused_and_not_queued() -> None:
    """Owing more live frames than the budget is refused (the shell then closes with 1013)."""
    backlog = Backlog(limit=10)
    assert backlog.queue(b"x" * 10)
    assert not backlog.queue(b"y")
    assert backlog.owed == 10
    backlog.clear()
    assert backlog.owed == 0
    assert backlog.next() is None


def test_history_on_credit_is_never_refused_and_leaves_the_live_budget_whole() -> None:
    """Credit past the budget is taken, and a live frame behind it still has the whole budget."""
    backlog = Backlog(limit=10)
    for _ in range(5):
        backlog.owe(b"h" * 10)
    assert (backlog.owed, backlog.credit, backlog.owed_live) == (50, 50, 0)
    assert backlog.queue(b"x" * 10)
    assert not backlog.queue(b"y")
    assert (backlog.owed, backlog.credit, backlog.owed_live) == (60, 50, 10)


# An op: ("owe" | "queue", frame size) or ("next", 0).
ops = st.lists(
    st.tuples(st.sampled_from(["owe", "queue", "next"]), st.integers(min_value=0, max_value=40)),
    max_size=80,
)


@given(ops, st.integers(min_value=0, max_value=100))
@settings(max_examples=300)
def test_any_interleaving_keeps_order_counts_and_the_live_budget(
    steps: list[tuple[str, int]], limit: int
) -> None:
    """For any mix of credit, live frames and hand-overs: frames come out in the order they were
    accepted, credit is never refused, a live frame is refused exactly when the live frames owed
    would pass the budget, and ``owed``, ``owed_live`` and ``credit`` count what is still owed."""
    backlog = Backlog(limit=limit)
    model: deque[tuple[bytes, bool]] = deque()  # (frame, live) still owed
    for serial, (op, size) in enumerate(steps):
        frame = serial.to_bytes(2, "big") + b"." * size  # distinct frames of 2 + size bytes
        if op == "owe":
            backlog.owe(frame)
            model.append((frame, False))
        elif op == "queue":
            live_owed = sum(len(f) for f, live in model if live)
            fits = live_owed + len(frame) <= limit
            assert backlog.queue(frame) is fits
            if fits:
                model.append((frame, True))
        else:
            assert backlog.next() == (model.popleft()[0] if model else None)
        assert backlog.owed == sum(len(f) for f, _ in model)
        assert backlog.owed_live == sum(len(f) for f, live in model if live)
        assert backlog.credit == sum(len(f) for f, live in model if not live)
        assert backlog.owed_live <= limit
    assert [backlog.next() for _ in model] == [f for f, _ in model]
    assert backlog.next() is None
    assert backlog.owed == backlog.owed_live == backlog.credit == 0
