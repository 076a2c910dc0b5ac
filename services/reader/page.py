"""The reader page ``GET /live/{story}``: the live blog in a browser, updating itself.

CONTRACT.md "Reader page" and "Reader page hooks". Rules:
- the page is complete without scripts: the first page of entries (newest first, the pinned entry
  on top and not repeated below), the key-events list, correction notes with their time,
  retraction tombstones with their note (never the body), embeds, and schema.org
  ``LiveBlogPosting`` JSON-LD; ``?before=<cursor>`` serves older pages;
- ``<html>`` (the root element) carries ``data-story``, ``data-version`` (the version rendered)
  and ``data-ws`` (the gateway); ``static/reader.js`` subscribes with ``since`` that version and
  applies each change in place, so nothing falls between render and subscribe;
- entry bodies are stored exactly as validated (``events/html.py``) and go in as HTML, with
  ``rel="noopener nofollow ugc"`` set on every link; everything else is text, escaped;
- embeds: ``image`` is an ``<img>`` (https only, alt text, lazy), ``link`` a link out. ``video``
  and ``map`` are click-to-load: a placeholder that makes no third-party request until the reader
  asks, then an iframe on the provider's player (YouTube via youtube-nocookie.com, Vimeo with
  ``dnt=1``, Dailymotion, Datawrapper, OpenStreetMap's ``/export/embed.html``); a video or map
  URL with no known player, and every ``social`` post (their players need third-party scripts,
  which the policy refuses), is a card linking out. ``player_url`` here and ``playerUrl`` in
  ``reader.js`` are the same function, and the browser tests compare their output;
- every answer carries a strict Content-Security-Policy with a fresh nonce: scripts and styles
  only by nonce, images https, frames only the players above, connections only the gateway,
  no plugins, no base, no forms, framed only by ourselves.

The renderer mirrors ``reader.js`` element for element; change both together.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import secrets
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import nh3
from fastapi import APIRouter, Request, Response
from starlette.exceptions import HTTPException

from events.errors import DatelineError, UnknownStory
from events.html import ALLOWED_TAGS, LINK_ATTRIBUTES, LINK_SCHEMES
from events.ids import is_id
from projections.story import DEFAULT_LIMIT
from services.reader.plaintext import one_line
from services.settings import Settings
from services.store.readmodel import ReadModel
from services.store.record import Store

STATIC = Path(__file__).resolve().parent / "static"
LINK_REL = "noopener nofollow ugc"
"""Set on every link in an entry body and every embed link (CONTRACT "HTML subset")."""
FRAME_SOURCES = (
    "https://www.youtube-nocookie.com",
    "https://player.vimeo.com",
    "https://www.dailymotion.com",
    "https://datawrapper.dwcdn.net",
    "https://www.openstreetmap.org",
)
"""The only origins a click-to-load embed may frame (the policy's ``frame-src``)."""
PROVIDERS = (
    ("youtube.com", "YouTube"),
    ("youtube-nocookie.com", "YouTube"),
    ("youtu.be", "YouTube"),
    ("vimeo.com", "Vimeo"),
    ("dailymotion.com", "Dailymotion"),
    ("x.com", "X"),
    ("twitter.com", "X"),
    ("bsky.app", "Bluesky"),
    ("instagram.com", "Instagram"),
    ("facebook.com", "Facebook"),
    ("threads.net", "Threads"),
    ("tiktok.com", "TikTok"),
    ("openstreetmap.org", "OpenStreetMap"),
    ("google.com", "Google Maps"),
    ("datawrapper.dwcdn.net", "Datawrapper"),
)
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_YOUTUBE_ID = re.compile(r"[A-Za-z0-9_-]{11}")
_DAILYMOTION_ID = re.compile(r"[A-Za-z0-9]+")
_HOSTNAME = re.compile(r"[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\]")

_CLEANER_OPTIONS: dict[str, Any] = {
    "tags": set(ALLOWED_TAGS),
    "attributes": {"a": set(LINK_ATTRIBUTES)},
    "url_schemes": set(LINK_SCHEMES),
    "link_rel": LINK_REL,
    "strip_comments": True,
}


def _make_cleaner() -> Callable[[str], str]:
    """nh3 with the body allow-list plus ``link_rel``; a reusable Cleaner where nh3 has one."""
    if hasattr(nh3, "Cleaner"):  # nh3 >= 0.3 builds the allow-list once instead of per call
        return nh3.Cleaner(**_CLEANER_OPTIONS).clean

    def clean(body: str) -> str:  # pragma: no cover - older nh3
        return str(nh3.clean(body, **_CLEANER_OPTIONS))

    return clean


_with_rel = _make_cleaner()
"""A stored body with ``rel`` set on its links (nothing else changes: it was validated)."""


def esc(value: object) -> str:
    """Text or attribute value, escaped (quotes too)."""
    return html.escape(str(value), quote=True)


# -- pieces shared with reader.js ---------------------------------------------------------------


def _host_is(host: str, domain: str) -> bool:
    return host == domain or host.endswith("." + domain)


def provider(url: str) -> str:
    """A reader-facing name for an embed's host ("YouTube"), or the host itself."""
    host = (urlsplit(url).hostname or "").lower()
    for domain, name in PROVIDERS:
        if _host_is(host, domain):
            return name
    return host.removeprefix("www.")


def player_url(kind: str, url: str) -> str | None:
    """The iframe a click-to-load embed becomes, or None when it can only link out."""
    if kind not in ("video", "map"):
        return None
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    segments = [s for s in parts.path.split("/") if s]
    if parts.scheme != "https":
        return None
    if kind == "video":
        video: str | None = None
        if host == "youtu.be":
            video = segments[0] if segments else None
        elif _host_is(host, "youtube.com") or _host_is(host, "youtube-nocookie.com"):
            if segments[:1] == ["watch"]:
                video = parse_qs(parts.query).get("v", [""])[0]
            elif len(segments) >= 2 and segments[0] in ("embed", "shorts", "live", "v"):
                video = segments[1]
        if video is not None and _YOUTUBE_ID.fullmatch(video):
            return f"https://www.youtube-nocookie.com/embed/{video}"
        if _host_is(host, "vimeo.com"):
            numbers = [s for s in segments if s.isascii() and s.isdigit()]
            if numbers:
                return f"https://player.vimeo.com/video/{numbers[-1]}?dnt=1"
        if _host_is(host, "dailymotion.com") and "video" in segments:
            at = segments.index("video")
            if at + 1 < len(segments):
                clip = segments[at + 1].split("_", 1)[0]
                if _DAILYMOTION_ID.fullmatch(clip):
                    return f"https://www.dailymotion.com/embed/video/{clip}"
        return None
    if host == "datawrapper.dwcdn.net" and segments:
        return f"https://datawrapper.dwcdn.net{parts.path}"
    if (
        host in ("openstreetmap.org", "www.openstreetmap.org")
        and parts.path == "/export/embed.html"
    ):
        return f"https://www.openstreetmap.org/export/embed.html?{parts.query}"
    return None


def parse_time(iso: str) -> datetime:
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


def stamp(iso: str, now: datetime, css: str = "published") -> str:
    return (
        f'<time class="{css}" datetime="{esc(iso)}" title="{esc(full_date(iso))}">'
        f'{esc(clock(iso))}</time><span class="ago" data-ago="{esc(iso)}">'
        f"{esc(ago(iso, now))}</span>"
    )


def note_time(iso: str) -> str:
    return f'<time datetime="{esc(iso)}" title="{esc(full_date(iso))}">{esc(clock(iso))}</time>'


# -- entries ------------------------------------------------------------------------------------


def render_embed(embed: dict[str, Any]) -> str:
    """One embed: an image, a link card, or a click-to-load placeholder."""
    kind, url = str(embed["kind"]), str(embed["url"])
    caption = embed.get("caption")
    alt = embed.get("alt")
    head = f'<figure class="embed embed-{esc(kind)}" data-embed-id="{esc(embed["embed_id"])}">'
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    if not url.startswith("https://"):
        return ""  # never reached: the decision refuses other schemes; never render them anyway
    name = provider(url)
    if kind == "image":
        return (
            f'{head}<img src="{esc(url)}" alt="{esc(alt or "")}" loading="lazy" '
            f'decoding="async" referrerpolicy="no-referrer">{cap}</figure>'
        )
    link = f'<a class="embed-out" href="{esc(url)}" rel="{LINK_REL}">'
    if kind == "link":
        return f'{head}{link}<span class="embed-host">{esc(name)}</span>{esc(caption or url)}</a></figure>'
    player = player_url(kind, url)
    noun = {"video": "video", "map": "map", "social": "post"}.get(kind, "embed")
    parts = [head, '<div class="embed-placeholder">', f'<p class="embed-host">{esc(name)}</p>']
    if alt:
        parts.append(f'<p class="embed-alt">{esc(alt)}</p>')
    if player:
        title = caption or alt or f"{name} {noun}"
        parts.append(
            f'<button type="button" class="embed-load" data-player="{esc(player)}" '
            f'data-title="{esc(title)}">Load {noun} from {esc(name)}</button>'
            f'<p class="embed-notice">Loading it connects to {esc(urlsplit(player).hostname)}.</p>'
        )
    parts.append(f"{link}View {noun} on {esc(name)}</a></div>{cap}</figure>")
    return "".join(parts)


def render_entry(entry: dict[str, Any], now: datetime, pinned: bool = False) -> str:
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
        out.append(f'<div class="body">{_with_rel(str(entry.get("body") or ""))}</div>')
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
    out.append("</article>")
    return "".join(out)


def render_key_events(items: Iterable[Any]) -> str:
    return "".join(
        f'<li><a href="#entry-{esc(k["entry_id"])}">{esc(k.get("headline") or "Key event")}</a></li>'
        for k in items
    )


# -- structured data ----------------------------------------------------------------------------


def shortened(text: str, limit: int = 110) -> str:
    """A headline for an entry without one: its text, cut at a word (Google reads 110)."""
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
        updates.append(
            {
                "@type": "BlogPosting",
                "@id": f"{url}#entry-{e['entry_id']}",
                "url": f"{url}#entry-{e['entry_id']}",
                "headline": headline,
                "articleBody": text,
                "datePublished": e["published_at"],
                "dateModified": e["updated_at"],
            }
        )
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


# -- the page -----------------------------------------------------------------------------------


class Assets:
    """``reader.js`` and ``reader.css``, read once, served with a content hash for caching."""

    TYPES: ClassVar[dict[str, str]] = {
        "reader.js": "text/javascript; charset=utf-8",
        "reader.css": "text/css; charset=utf-8",
    }

    def __init__(self) -> None:
        self.files = {name: (STATIC / name).read_bytes() for name in self.TYPES}
        self.hashes = {n: hashlib.sha256(b).hexdigest()[:16] for n, b in self.files.items()}

    def url(self, name: str) -> str:
        return f"/static/{name}?v={self.hashes[name]}"


def content_security_policy(nonce: str, ws_url: str) -> str:
    """The page's policy: nothing runs, loads, frames or connects that we did not name."""
    return "; ".join(
        (
            "default-src 'none'",
            f"script-src 'nonce-{nonce}'",
            f"style-src 'nonce-{nonce}'",
            "img-src https: data:",
            f"frame-src {' '.join(FRAME_SOURCES)}",
            f"connect-src {ws_url}",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'self'",
        )
    )


def page_headers(nonce: str, ws_url: str) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(nonce, ws_url),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "strict-origin-when-cross-origin",
        "Cache-Control": "no-cache, private",
    }


def _head(title: str, nonce: str, assets: Assets, extra: str = "") -> str:
    return (
        '<head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title>"
        '<link rel="icon" href="data:,">'
        f'<link rel="stylesheet" href="{assets.url("reader.css")}" nonce="{nonce}">'
        f"{extra}</head>"
    )


def render_page(
    state: dict[str, Any],
    *,
    opened_at: str | None,
    url: str,
    ws_url: str,
    nonce: str,
    assets: Assets,
    now: datetime,
    before: int | None = None,
    frozen: str | None = None,
) -> str:
    """The whole page at ``state["version"]``; with ``frozen`` (a banner), an archived view of
    the past with no live script (``GET /stories/{story}/replay?format=html``)."""
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
        f'<script type="application/ld+json" nonce="{nonce}">{json_ld(state, opened_at, url)}</script>'
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
        _head(str(state["title"]), nonce, assets, extra),
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
        ""
        if frozen
        else f'<script src="{assets.url("reader.js")}" nonce="{nonce}" defer></script>',
        "</body></html>",
    ]
    return "".join(out)


def message_page(status: int, title: str, text: str, nonce: str, assets: Assets) -> str:
    """A plain page for a story that does not exist, a bad cursor, or a store that is down."""
    return (
        '<!doctype html><html lang="en">'
        f"{_head(title, nonce, assets)}"
        '<body><main class="wrap message">'
        f'<p class="status status-closed">{status}</p><h1>{esc(title)}</h1><p>{esc(text)}</p>'
        "</main></body></html>"
    )


def ws_url_for(request: Request, settings: Settings) -> str:
    """The gateway URL for this page: ``DATELINE_WS_URL``, else the gateway beside this API.

    When the API listens on every address, "beside" means the host the reader asked for.
    """
    if settings.ws_url or settings.host not in ("0.0.0.0", "::"):  # noqa: S104 - names, not binds
        return settings.public_ws_url()
    host = request.url.hostname or ""
    if not _HOSTNAME.fullmatch(host):
        return settings.public_ws_url()
    scheme = "wss" if request.url.scheme == "https" else "ws"
    return f"{scheme}://{host}:{settings.ws_port}/ws"


async def frozen_page(
    store: Store, request: Request, state: dict[str, Any], at: str | None
) -> Response:
    """The reader page as it stood at ``state["version"]``: for auditors, with no live script."""
    story = str(state["story"])
    opened = await store.read(story, 1, 1)
    moment = at or str(state["updated_at"])
    banner = (
        f"Archived view: this live blog as readers saw it at version {state['version']}, "
        f"{full_date(moment)}. It does not update."
    )
    nonce = secrets.token_urlsafe(18)
    body = render_page(
        state,
        opened_at=opened[0].recorded_at if opened else None,
        url=str(request.url.replace(query="", fragment="")),
        ws_url="'none'",
        nonce=nonce,
        assets=_ASSETS,
        now=parse_time(moment),
        frozen=banner,
    )
    return Response(body, 200, page_headers(nonce, "'none'"), media_type="text/html")


_ASSETS = Assets()


def router(settings: Settings, store: Store, reads: ReadModel) -> APIRouter:
    """``GET /live/{story}`` and its two static files."""
    assets = _ASSETS
    routes = APIRouter(tags=["reader"])

    def answer(status: int, title: str, text: str, ws: str) -> Response:
        nonce = secrets.token_urlsafe(18)
        body = message_page(status, title, text, nonce, assets)
        return Response(body, status, page_headers(nonce, ws), media_type="text/html")

    @routes.get("/live/{story}", response_class=Response)
    async def live(story: str, request: Request) -> Response:
        """The reader page: server-rendered, then live through the gateway."""
        ws = ws_url_for(request, settings)
        raw_before = request.query_params.get("before")
        before: int | None = None
        if raw_before is not None:
            if not (raw_before.isascii() and raw_before.isdigit() and 0 < len(raw_before) < 19):
                return answer(400, "Bad page", "That link to older updates is not valid.", ws)
            before = int(raw_before)
            if before < 1:
                return answer(400, "Bad page", "That link to older updates is not valid.", ws)
        try:
            if not is_id(story):
                raise UnknownStory(story)
            state = await reads.story(story, DEFAULT_LIMIT, before)
            opened = await store.read(story, 1, 1)
        except UnknownStory:
            return answer(404, "No such live blog", f"There is no live blog called {story}.", ws)
        except DatelineError as error:
            response = answer(
                error.status if error.status >= 500 else 503,
                "Temporarily unavailable",
                "This live blog cannot be shown right now. Please try again in a moment.",
                ws,
            )
            response.headers["Retry-After"] = "5"
            return response
        nonce = secrets.token_urlsafe(18)
        url = str(request.url.replace(query="", fragment=""))
        body = render_page(
            state,
            opened_at=opened[0].recorded_at if opened else None,
            url=url,
            ws_url=ws,
            nonce=nonce,
            assets=assets,
            now=datetime.now(UTC),
            before=before,
        )
        return Response(body, 200, page_headers(nonce, ws), media_type="text/html")

    @routes.get("/static/{name}", include_in_schema=False)
    async def static(name: str, request: Request) -> Response:
        """The page's script and stylesheet; immutable when asked for by content hash."""
        if name not in assets.files:
            raise HTTPException(404, f"no static file {name!r}")
        fresh = request.query_params.get("v") == assets.hashes[name]
        headers = {
            "Cache-Control": "public, max-age=31536000, immutable" if fresh else "no-cache",
            "ETag": f'"{assets.hashes[name]}"',
            "X-Content-Type-Options": "nosniff",
        }
        if request.headers.get("if-none-match") == headers["ETag"]:
            return Response(status_code=304, headers=headers)
        return Response(assets.files[name], 200, headers, media_type=assets.TYPES[name])

    return routes
