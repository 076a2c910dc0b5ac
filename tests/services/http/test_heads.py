"""Heads: each followed story's version, trusted only while the change tail is current."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.http.heads import FRESH, Heads


def test_nothing_is_known_before_the_tail_has_replied() -> None:
    """A story read from the store is followed, but its version is trusted only once the tail
    has replied: until then every request asks the store."""
    heads = Heads()
    heads.learned("s", 4)
    assert heads.current("s", 0.0) is None
    heads.replied(0.0)
    assert heads.current("s", 0.0) == 4


def test_the_tail_moves_followed_stories_only_and_only_up() -> None:
    heads = Heads()
    heads.replied(0.0)
    heads.changed("other", {b"s": b"other", b"7": b"{}"})
    assert heads.current("other", 0.0) is None  # not followed: never read here
    heads.learned("s", 4)
    heads.changed("s", {b"s": b"s", b"5": b"{}", b"6": b"{}"})
    assert heads.current("s", 0.0) == 6
    heads.changed("s", {b"s": b"s", b"3": b"{}"})  # an old entry (a retry): no step back
    heads.learned("s", 5)  # a read that raced the tail
    assert heads.current("s", 0.0) == 6


def test_a_silent_or_failed_tail_forgets_what_it_knew() -> None:
    """Past ``FRESH`` seconds without a reply nothing is trusted; a failure forgets all, so a
    store outage sends every request to the store (503), never to a stale answer."""
    heads = Heads()
    heads.replied(10.0)
    heads.learned("s", 4)
    assert heads.current("s", 10.0 + FRESH) == 4
    assert heads.current("s", 10.0 + FRESH + 0.01) is None
    heads.replied(20.0)
    assert heads.current("s", 20.0) == 4
    heads.failed()
    assert not heads.following
    heads.replied(21.0)
    assert heads.current("s", 21.0) is None  # forgotten: learned again from the next read


def test_at_most_limit_stories_are_followed_least_recently_asked_first_forgotten() -> None:
    heads = Heads(limit=2)
    heads.replied(0.0)
    heads.learned("a", 1)
    heads.learned("b", 1)
    assert heads.current("a", 0.0) == 1  # asked: now the most recent
    heads.learned("c", 1)
    assert heads.current("b", 0.0) is None
    assert heads.current("a", 0.0) == 1
    assert heads.current("c", 0.0) == 1


@given(st.lists(st.tuples(st.booleans(), st.integers(1, 50)), max_size=40))
def test_the_version_known_is_the_highest_seen_from_either_source(
    steps: list[tuple[bool, int]],
) -> None:
    """Reads and tail entries in any order: the version is the highest either reported."""
    heads = Heads()
    heads.replied(0.0)
    heads.learned("s", 1)
    highest = 1
    for from_tail, version in steps:
        if from_tail:
            heads.changed("s", {b"s": b"s", str(version).encode(): b"{}"})
        else:
            heads.learned("s", version)
        highest = max(highest, version)
        assert heads.current("s", 0.0) == highest
