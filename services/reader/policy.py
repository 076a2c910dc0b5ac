"""What the reader page lets in: text escaped, bodies with ``rel`` on their links, and its policy.

Rules (CONTRACT.md "HTML subset", "Reader page"):
- entry bodies are stored exactly as validated (``events/html.py``) and go in as HTML, with
  ``rel="noopener nofollow ugc"`` set on every link; everything else is text, escaped;
- every page carries a strict Content-Security-Policy, the same for every reader at a version:
  scripts only the loader by its hash and what it adds (``'strict-dynamic'``: ``reader.js``,
  checked by its digest; ``assets.py``), styles only our own stylesheet (``'self'``: the one
  stylesheet this origin serves; inline styles and style attributes are refused), images
  https, frames only the players of ``FRAME_SOURCES``, connections only the gateway, no
  plugins, no base, no forms, framed only by ourselves. ``'self'`` after ``'strict-dynamic'``
  is ignored by every browser that knows ``'strict-dynamic'`` (CSP3), and lets the few that do
  not still run the live script.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import nh3

from events.html import ALLOWED_TAGS, LINK_ATTRIBUTES, LINK_SCHEMES

LINK_REL = "noopener nofollow ugc"
"""Set on every link in an entry body and every embed link (CONTRACT "HTML subset")."""
FRAME_SOURCES = (
    "https://www.youtube-nocookie.com",
    "https://player.vimeo.com",
    "https://www.dailymotion.com",
    "https://datawrapper.dwcdn.net",
    "https://www.openstreetmap.org",
)
"""The only origins a click-to-load embed may frame (``embeds.player_url`` names no other)."""

_CLEANER_OPTIONS: dict[str, Any] = {
    "tags": set(ALLOWED_TAGS),
    "attributes": {"a": set(LINK_ATTRIBUTES)},
    "url_schemes": set(LINK_SCHEMES),
    "link_rel": LINK_REL,
    "strip_comments": True,
}


def _make_cleaner() -> Callable[[str], str]:
    """nh3 with the body allow-list plus ``link_rel``, built once (pyproject pins nh3 >= 0.3.8)."""
    return nh3.Cleaner(**_CLEANER_OPTIONS).clean


with_rel = _make_cleaner()
"""A stored body with ``rel`` set on its links (nothing else changes: it was validated)."""


def esc(value: object) -> str:
    """Text or attribute value, escaped (quotes too)."""
    return html.escape(str(value), quote=True)


def content_security_policy(loader: str, ws_url: str) -> str:
    """The page's policy: nothing runs, loads, frames or connects that we did not name.

    ``loader`` is the source expression of the page's one inline script (its hash), or
    ``'none'`` for a page with no script.
    """
    scripts = "'none'" if loader == "'none'" else f"{loader} 'strict-dynamic' 'self'"
    return "; ".join(
        (
            "default-src 'none'",
            f"script-src {scripts}",
            "style-src 'self'",
            "img-src https: data:",
            f"frame-src {' '.join(FRAME_SOURCES)}",
            f"connect-src {ws_url}",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'self'",
        )
    )


def page_headers(loader: str, ws_url: str) -> dict[str, str]:
    """The headers of every page: its policy.

    No sniffing, framing by this origin only and a careful referrer are on every answer
    (``services/http/security.py``); how long a page may be cached is the caller's to say
    (``services.http.pages``).
    """
    return {"Content-Security-Policy": content_security_policy(loader, ws_url)}
