"""Entry bodies as plain text: paragraphs and links kept for terminals, one line for JSON-LD."""

from __future__ import annotations

from projections.plaintext import excerpt, html_text, one_line

BODY = '<p>Polls <strong>close</strong> at 8.</p><p>See <a href="https://example.org/r">results</a>.</p>'


def test_html_text_keeps_paragraphs_and_link_addresses() -> None:
    """Tags go; paragraphs stay apart and a link's address follows its text."""
    assert html_text(BODY) == "Polls close at 8.\n\nSee results (https://example.org/r)."


def test_html_text_does_not_repeat_an_address_the_link_already_shows() -> None:
    """A link whose text is its address (or a mail address) is shown once."""
    body = '<p><a href="https://a.example">https://a.example</a> <a href="mailto:d@a.example">d@a.example</a></p>'
    assert html_text(body) == "https://a.example d@a.example"


def test_html_text_shows_bullets_and_line_breaks() -> None:
    """List items become bullets and a ``br`` a new line."""
    body = "<ul><li>One</li><li>Two</li></ul><p>a<br>b</p>"
    assert html_text(body) == "• One\n• Two\n\na\nb"


def test_one_line_drops_link_addresses() -> None:
    """JSON-LD's articleBody is the text on one line, without addresses."""
    assert one_line(BODY) == "Polls close at 8. See results."


def test_excerpt_cuts_at_the_size_with_an_ellipsis() -> None:
    """A long body is cut to exactly ``size`` characters, the last an ellipsis; a short one is whole."""
    cut = excerpt(BODY, 20)
    assert len(cut) == 20
    assert cut == "Polls close at 8. S…"
    assert excerpt("<p>Short.</p>", 20) == "Short."
