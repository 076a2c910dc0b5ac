"""Entry bodies as plain text: for terminals (``dateline tail``) and JSON-LD (the reader page).

Bodies are the contract's safe HTML subset; here tags are dropped, paragraphs and bullets kept as
line breaks, and a link's address shown after its text when the text does not already say it.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

_BLOCKS = frozenset({"p", "h3", "h4", "blockquote", "ul", "ol"})


class _PlainText(HTMLParser):
    """The safe HTML subset as plain text: paragraphs, bullets, and links with their address."""

    def __init__(self, links: bool = True) -> None:
        super().__init__(convert_charrefs=True)
        self.links = links
        self.parts: list[str] = []
        self.href: str | None = None
        self.link_start = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCKS:
            self.parts.append("\n\n")
        elif tag == "br":
            self.parts.append("\n")
        elif tag == "li":
            self.parts.append("\n• ")
        elif tag == "a":
            self.href = dict(attrs).get("href")
            self.link_start = len(self.parts)

    def handle_endtag(self, tag: str) -> None:
        if tag in _BLOCKS:
            self.parts.append("\n\n")
        elif tag == "a" and self.href and self.links:
            shown = "".join(self.parts[self.link_start :]).strip()
            if self.href not in (shown, f"mailto:{shown}"):
                self.parts.append(f" ({self.href})")
            self.href = None

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def html_text(html: str, links: bool = True) -> str:
    """An entry body as plain text for a terminal: tags dropped, paragraphs and links kept."""
    parser = _PlainText(links)
    parser.feed(html)
    parser.close()
    text = "".join(parser.parts)
    lines = [re.sub(r"[ \t\r\f\v]+", " ", line).strip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def excerpt(html: str, size: int) -> str:
    """The body's text (links kept) on one line, cut to ``size`` characters with an ellipsis."""
    text = " ".join(html_text(html).split())
    return text if len(text) <= size else text[: size - 1] + "…"


def one_line(html: str) -> str:
    """The body's text on one line, without link addresses (JSON-LD ``articleBody``)."""
    return " ".join(html_text(html, links=False).split())
