"""The page's schema.org ``LiveBlogPosting`` JSON-LD (CONTRACT.md "Reader page").

One ``BlogPosting`` per readable entry shown (the pinned one first, retracted ones never), its
text as plain text, each of its corrections a ``CorrectionComment`` (note and time); written so
that nothing in it can end or bend its ``<script>`` element.
"""

from __future__ import annotations

import json
from typing import Any

from projections.plaintext import one_line

HEADLINE_LIMIT = 110
"""Characters of a headline made from an entry's text (what Google reads of one)."""


def shortened(text: str, limit: int = HEADLINE_LIMIT) -> str:
    """A headline for an entry without one: its text, cut at a word."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0].rstrip(" ,;:.")
    return cut + "…"


def json_ld(state: dict[str, Any], opened_at: str | None, url: str) -> str:
    """schema.org ``LiveBlogPosting`` for the page, safe inside ``<script>``."""
    updates = []
    shown = ([state["pinned"]] if state.get("pinned") else []) + [
        e
        for e in state["entries"]
        if not state.get("pinned") or e["entry_id"] != state["pinned"]["entry_id"]
    ]
    for e in shown:
        if e["status"] != "published":
            continue
        text = one_line(e["body"] or "")
        headline = e.get("headline") or shortened(text)
        update: dict[str, Any] = {
            "@type": "BlogPosting",
            "@id": f"{url}#entry-{e['entry_id']}",
            "url": f"{url}#entry-{e['entry_id']}",
            "headline": headline,
            "articleBody": text,
            "datePublished": e["published_at"],
            "dateModified": e["updated_at"],
        }
        corrections = e.get("corrections") or []
        if corrections:  # schema.org: each correction a CorrectionComment, its note and time
            update["correction"] = [
                {"@type": "CorrectionComment", "text": c["note"], "datePublished": c["at"]}
                for c in corrections
            ]
        updates.append(update)
    data: dict[str, Any] = {
        "@context": "https://schema.org",
        "@type": "LiveBlogPosting",
        "@id": url,
        "url": url,
        "headline": state["title"],
        "coverageStartTime": opened_at,
        "datePublished": opened_at,
        "dateModified": state["updated_at"],
        "liveBlogUpdate": updates,
    }
    if state.get("summary"):
        data["description"] = state["summary"]
    if state["status"] == "closed":
        data["coverageEndTime"] = state["updated_at"]
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    # Inside <script>, "</script" or "<!--" would end or bend the element: no "<" at all.
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
