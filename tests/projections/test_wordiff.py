"""The word diff a correction shows readers: it rebuilds both texts, marks only what changed,
and ignores what readers cannot see (tags, runs of spaces)."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from projections.plaintext import one_line
from projections.wordiff import word_diff

WORDS = st.lists(st.sampled_from(["the", "red", "amber", "warning", "west", "12", "dead"]))


@given(WORDS, WORDS)
def test_the_runs_rebuild_the_text_before_and_after(before: list[str], after: list[str]) -> None:
    old, new = f"<p>{' '.join(before)}</p>", f"<p>{' '.join(after)}</p>"
    diff = word_diff(old, new)
    assert "".join(t for op, t in diff if op != "+") == one_line(old)
    assert "".join(t for op, t in diff if op != "-") == one_line(new)
    assert all(a[0] != b[0] for a, b in itertools.pairwise(diff))  # runs merged
    assert word_diff(old, new) == diff  # the same every time


def test_only_the_words_that_changed_are_marked() -> None:
    assert word_diff(
        "<p>The warning is <strong>red</strong> for the west.</p>",
        "<p>The warning is amber for the  whole west.</p>",
    ) == (
        ("=", "The warning is "),
        ("-", "red"),
        ("+", "amber"),
        ("=", " for the "),
        ("+", "whole "),
        ("=", "west."),
    )
    assert word_diff("<p>issued a red warning</p>", "<p>issued an amber warning</p>") == (
        ("=", "issued "),
        ("-", "a red"),
        ("+", "an amber"),
        ("=", " warning"),
    )
    assert word_diff("<p>Same <em>words</em></p>", "<p><b>Same</b> words</p>") == (
        ("=", "Same words"),
    )
