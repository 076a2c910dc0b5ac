"""Plain-text fields refuse what no chain could hash or show."""

from __future__ import annotations

import pytest

from events.decide import parse_command
from events.errors import InvalidEvent
from events.text import control_characters


def test_a_lone_surrogate_in_text_is_refused_by_name() -> None:
    """A lone surrogate cannot be encoded as UTF-8, so it is refused like a control character."""
    assert control_characters("a\ud800b") == ["U+D800"]
    with pytest.raises(InvalidEvent):
        parse_command("entry.published", {"body": "<p>x</p>", "headline": "bad \udc00"})


def test_emoji_and_tabs_are_plain_text() -> None:
    """Astral characters, tabs, newlines and carriage returns are ordinary text."""
    assert control_characters("Storm \U0001f300 update\t\r\n") == []
