"""Embed URLs and the provider allow-list (CONTRACT.md "Details: Embeds"). TO BE WRITTEN."""

from __future__ import annotations


def refused_embed_url(kind: str, url: str) -> tuple[str, ...]:
    """Why ``url`` cannot be embedded as ``kind``: one reason each; empty when it can."""
    return ()
