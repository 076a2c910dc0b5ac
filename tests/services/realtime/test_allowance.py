"""A connection's op allowance: GCRA's promise, and the flood that closes, under hypothesis."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.realtime.allowance import FLOOD, Allowance, Ops, Verdict

gaps = st.lists(st.floats(min_value=0, max_value=0.5, allow_nan=False), min_size=1, max_size=400)


def arrivals(steps: list[float]) -> list[float]:
    now, times = 1000.0, []
    for step in steps:
        now += step
        times.append(now)
    return times


@given(gaps, st.integers(min_value=1, max_value=50), st.floats(min_value=0.5, max_value=100))
def test_no_window_holds_more_than_the_burst_plus_the_rate(
    steps: list[float], burst: int, rate: float
) -> None:
    """Whatever a client sends, the ops taken in any window of d seconds are at most
    ``burst + rate * d`` (GCRA's conformance)."""
    allowance = Allowance(1 / rate, burst)
    taken = [t for t in arrivals(steps) if allowance.take(t)]
    for i, start in enumerate(taken):
        for j in range(i, len(taken)):
            assert j - i + 1 <= burst + rate * (taken[j] - start) + 1e-6


@given(st.integers(min_value=1, max_value=50), st.floats(min_value=0.5, max_value=100))
def test_a_client_within_the_rate_is_never_refused(burst: int, rate: float) -> None:
    """After a quiet spell, a burst and then one op per interval are all performed."""
    ops = Ops.of(rate, burst)
    now = 50.0
    assert all(ops.judge(now) is Verdict.PERFORM for _ in range(burst))
    for _ in range(200):
        now += 1 / rate
        assert ops.judge(now) is Verdict.PERFORM


def test_past_the_burst_ops_are_refused_not_closed() -> None:
    """250 frames at once at the defaults (20 a second, bursts of 200): 200 performed, 50
    refused, none closing the connection."""
    ops = Ops.of(20, 200)
    verdicts = [ops.judge(10.0) for _ in range(250)]
    assert verdicts.count(Verdict.PERFORM) == 200
    assert verdicts.count(Verdict.REFUSE) == 50


@given(st.floats(min_value=FLOOD * 1.5, max_value=FLOOD * 50))
def test_a_flood_is_closed_within_seconds(times_the_rate: float) -> None:
    """A client sending well past ``FLOOD`` times the rate is closed, and it never was before it
    had sent more than twice the burst beyond the flood rate allows."""
    rate, burst = 20.0, 200
    ops, now, sent = Ops.of(rate, burst), 0.0, 0
    while ops.judge(now) is not Verdict.CLOSE:
        sent += 1
        now += 1 / (rate * times_the_rate)
        assert now < 30, "never closed"
    assert sent >= 2 * burst


def test_rate_zero_performs_everything() -> None:
    ops = Ops.of(0, 1)
    assert {ops.judge(1.0) for _ in range(10_000)} == {Verdict.PERFORM}
