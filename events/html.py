"""The safe HTML subset of entry bodies (CONTRACT.md "Details: HTML subset"). TO BE WRITTEN."""

from __future__ import annotations


def refused_html(body: str) -> tuple[str, ...]:
    """Everything in ``body`` outside the subset, each named once, in order of appearance."""
    return ()
