"""The reader page's HTML: the whole page at a version, its entries, and the message pages.

CONTRACT.md "Reader page" and "Reader page hooks". Rules:
- the page is complete without scripts: the first page of entries (newest first, the pinned entry
  on top and not repeated below), the key-events list, correction notes with their time,
  retraction tombstones with their note (never the body), embeds, and schema.org
  ``LiveBlogPosting`` JSON-LD; ``?before=<cursor>`` serves older pages;
- ``<html>`` (the root element) carries ``data-story``, ``data-version`` (the version rendered)
  and ``data-ws`` (the gateway); ``static/reader.js`` subscribes with ``since`` that version and
  applies each change in place, so nothing falls between render and subscribe;
- what goes in as markup and what as text is ``policy.py``'s rule; embeds are ``embeds.py``'s.

The renderer mirrors ``reader.js`` element for element; change both together.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from services.reader.assets import Assets
from services.reader.embeds import render_embed
from services.reader.jsonld import json_ld
from services.reader.policy import esc, with_rel

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


# -- times, as reader.js writes them too --------------------------------------------------------


def parse_time(iso: str) -> datetime:
    """An ISO 8601 time from the record, in UTC."""
    return datetime.fromisoformat(iso).astimezone(UTC)


def clock(iso: str) -> str:
    """``18:50 UTC``: the absolute time shown beside every entry."""
    at = parse_time(iso)
    return f"{at.hour:02d}:{at.minute:02d} UTC"


def full_date(iso: str) -> str:
    """``24 Nov 2026, 18:50 UTC``: the time's tooltip."""
    at = parse_time(iso)
    return f"{at.day} {MONTHS[at.month - 1]} {at.year}, {at.hour:02d}:{at.minute:02d} UTC"


def ago(iso: str, now: datetime) -> str:
    """``3 min ago``: the relative time, which the script keeps current."""
    seconds = (now - parse_time(iso)).total_seconds()
    if seconds < 60:
        return "just now"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min ago"
    hours = minutes // 60
    if hours < 24:
        return f"{hours} hr ago"
    days = hours // 24
    return "1 day ago" if days == 1 else f"{days} days ago"


def stamp(iso: str, now: datetime | None, css: str = "published") -> str:
    """A time as the page shows it: the clock, its full date as a tooltip, and how long ago.

    With no ``now`` (a live page, the same bytes whenever it is served), "how long ago" is left
    for the script to write: the clock says when.
    """
    since = "" if now is None else esc(ago(iso, now))
    return (
        f'<time class="{css}" datetime="{esc(iso)}" title="{esc(full_date(iso))}">'
        f'{esc(clock(iso))}</time><span class="ago" data-ago="{esc(iso)}">{since}</span>'
    )


def note_time(iso: str) -> str:
    """The time of a correction or retraction note: the clock, its full date as a tooltip."""
    return f'<time datetime="{esc(iso)}" title="{esc(full_date(iso))}">{esc(clock(iso))}</time>'


# -- entries ------------------------------------------------------------------------------------

DIFF_TAGS = {"-": "del", "+": "ins"}
"""How a word diff's removed and added runs are marked (``=`` runs are plain text)."""


def correction_history(corrections: Any) -> str:
    """The "what changed" disclosure: each correction's note and time, and what it changed in
    the text readers saw, word by word (``projections.wordiff``): nothing else of the entry's
    history, and never a retracted text (a retracted entry shows no disclosure at all)."""
    count = len(corrections)
    items = []
    for c in corrections:
        diff = c.get("diff")
        shown = ""
        if diff:
            runs = "".join(
                f"<{DIFF_TAGS[op]}>{esc(text)}</{DIFF_TAGS[op]}>" if op in DIFF_TAGS else esc(text)
                for op, text in diff
            )
            shown = f'<p class="change-diff">{runs}</p>'
        items.append(
            f'<li class="change" data-version="{int(c["version"])}">'
            f'<p class="change-note"><strong>Correction</strong> ({note_time(c["at"])}): '
            f"{esc(c['note'])}</p>{shown}</li>"
        )
    label = "What changed" if count == 1 else f"What changed ({count} corrections)"
    return (
        f'<details class="correction-history"><summary>{label}</summary>'
        f'<ol class="changes">{"".join(items)}</ol></details>'
    )


def render_entry(entry: dict[str, Any], now: datetime | None, pinned: bool = False) -> str:
    """One ``<article>``, with the contract's hooks (CONTRACT "Reader page hooks")."""
    entry_id = str(entry["entry_id"])
    retracted = entry["status"] == "retracted"
    classes = ["entry"]
    if pinned:
        classes.append("pinned")
    if entry.get("key_event") and not retracted:
        classes.append("key-event")  # a retracted entry leaves the key events (CONTRACT "Edges")
    if retracted:
        classes.append("retracted")
    out = [
        f'<article class="{" ".join(classes)}" id="entry-{esc(entry_id)}" '
        f'data-entry-id="{esc(entry_id)}" data-published-version="{int(entry["published_version"])}">',
        '<header class="entry-meta">',
    ]
    if pinned:
        out.append('<span class="badge badge-pinned">Pinned</span>')
    if entry.get("key_event") and not retracted:
        out.append('<span class="badge badge-key">Key event</span>')
    if entry.get("time_label"):
        out.append(f'<span class="time-label">{esc(entry["time_label"])}</span>')
    out.append(stamp(str(entry["published_at"]), now))
    out.append("</header>")
    if retracted:
        retraction = entry.get("retraction") or {}
        out.append(
            '<p class="retraction"><strong>Retracted</strong> '
            f"({note_time(str(retraction.get('at') or entry['updated_at']))}): "
            f"{esc(retraction.get('note') or '')}</p>"
        )
    else:
        if entry.get("headline"):
            out.append(f'<h2 class="headline">{esc(entry["headline"])}</h2>')
        out.append(f'<div class="body">{with_rel(str(entry.get("body") or ""))}</div>')
        embeds = [render_embed(e) for e in entry.get("embeds") or ()]
        if any(embeds):
            out.append(f'<div class="embeds">{"".join(embeds)}</div>')
        corrections = entry.get("corrections") or ()
        if corrections:
            out.append('<div class="corrections">')
            for c in corrections:
                out.append(
                    f'<p class="correction"><strong>Correction</strong> ({note_time(c["at"])}): '
                    f"{esc(c['note'])}</p>"
                )
            out.append("</div>")
            out.append(correction_history(corrections))
    out.append("</article>")
    return "".join(out)


def render_key_events(items: Iterable[Any]) -> str:
    """The key-events list's items, each a link to its entry."""
    return "".join(
        f'<li><a href="#entry-{esc(k["entry_id"])}">{esc(k.get("headline") or "Key event")}</a></li>'
        for k in items
    )


# -- the page -----------------------------------------------------------------------------------


def _head(title: str, assets: Assets, extra: str = "") -> str:
    """The ``<head>`` of every page: its title and the stylesheet (by digest), then ``extra``."""
    return (
        '<head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title>"
        '<link rel="icon" href="data:,">'
        f'<link rel="stylesheet" href="{assets.url("reader.css")}" '
        f'integrity="{assets.integrity["reader.css"]}">'
        f"{extra}</head>"
    )


def render_page(
    state: dict[str, Any],
    *,
    opened_at: str | None,
    url: str,
    ws_url: str,
    assets: Assets,
    now: datetime | None,
    before: int | None = None,
    frozen: str | None = None,
) -> str:
    """The whole page at ``state["version"]``; with ``frozen`` (a banner), an archived view of
    the past with no live script (``GET /stories/{story}/replay?format=html``).

    ``now`` writes "how long ago" (an archived view, as it stood then); a live page passes None.
    """
    story = str(state["story"])
    pinned = state.get("pinned")
    pinned_id = pinned["entry_id"] if pinned else None
    closed = state["status"] == "closed"
    summary = state.get("summary")
    description = f'<meta name="description" content="{esc(summary)}">' if summary else ""
    extra = (
        f"{description}"
        f'<meta property="og:title" content="{esc(state["title"])}">'
        '<meta property="og:type" content="article">'
        f'<link rel="alternate" type="application/atom+xml" title="{esc(state["title"])}" '
        f'href="/live/{esc(story)}/feed.atom">'
        f'<script type="application/ld+json">{json_ld(state, opened_at, url)}</script>'
    )
    key_events = state.get("key_events") or []
    entries = [e for e in state["entries"] if e["entry_id"] != pinned_id]
    live_path = f"/live/{esc(story)}"
    paged = f' data-paged="{before}"' if before is not None else ""
    out = [
        "<!doctype html>",
        f'<html lang="en" data-story="{esc(story)}" data-version="{int(state["version"])}" '
        + ("data-frozen" if frozen else f'data-ws="{esc(ws_url)}"')
        + f"{paged}>",
        _head(str(state["title"]), assets, extra),
        "<body>",
        f'<div class="replay-banner" role="note"><div class="wrap">{esc(frozen)}</div></div>'
        if frozen
        else "",
        '<a class="skip" href="#entries">Skip to updates</a>',
        '<header class="masthead"><div class="wrap">',
        '<p class="status-line">',
        f'<span id="story-status" class="status status-{"closed" if closed else "live"}">'
        f"{'Ended' if closed else 'Live'}</span>",
        '<span class="updated">Updated ',
        stamp(str(state["updated_at"]), now, "story-updated"),
        "</span>",
        '<span id="connection" class="connection" hidden></span>',
        "</p>",
        f'<h1 id="story-title">{esc(state["title"])}</h1>',
        f'<p id="story-summary" class="summary"{"" if summary else " hidden"}>{esc(summary or "")}</p>',
        f'<p id="closed-note" class="closed-note"{"" if closed else " hidden"}>'
        f"{esc(state.get('closed_note') or ('This live blog has ended.' if closed else ''))}</p>",
        "</div></header>",
        '<div class="wrap layout">',
        f'<nav class="key-events" aria-labelledby="key-events-title"{"" if key_events else " hidden"}>',
        '<h2 id="key-events-title">Key events</h2>',
        f'<ol id="key-events">{render_key_events(key_events)}</ol>',
        "</nav>",
        '<main class="feed">',
    ]
    if before is not None:
        out.append(f'<p class="paging"><a href="{live_path}">Back to the latest updates</a></p>')
    out += [
        f'<div id="pinned"{"" if pinned else " hidden"}>',
        render_entry(pinned, now, pinned=True) if pinned else "",
        "</div>",
        '<div class="new-updates-bar">'
        '<button type="button" id="new-updates" class="new-updates" hidden></button></div>',
        '<div id="entries" class="entries" aria-live="polite" aria-relevant="additions">',
        *(render_entry(e, now) for e in entries),
        "</div>",
    ]
    if not state["entries"] and not pinned:
        out.append('<p class="empty" id="empty">No updates yet. This page updates itself.</p>')
    if state.get("next_before"):
        out.append(
            f'<p class="paging"><a id="older" rel="next" '
            f'href="{live_path}?before={esc(state["next_before"])}">Older updates</a></p>'
        )
    out += [
        "</main></div>",
        '<footer class="colophon"><div class="wrap">'
        "<p>Times are UTC. Corrections and retractions are shown where they happened.</p>"
        "</div></footer>",
        '<p id="announcer" class="visually-hidden" role="status" aria-live="polite"></p>',
        "" if frozen else f"<script>{assets.loader}</script>",
        "</body></html>",
    ]
    return "".join(out)


def message_page(status: int, title: str, text: str, assets: Assets) -> str:
    """A plain page for a story that does not exist, a bad cursor, or a store that is down."""
    return (
        '<!doctype html><html lang="en">'
        f"{_head(title, assets)}"
        '<body><main class="wrap message">'
        f'<p class="status status-closed">{status}</p><h1>{esc(title)}</h1><p>{esc(text)}</p>'
        "</main></body></html>"
    )
