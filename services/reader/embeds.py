"""Embeds on the reader page: their providers, their players, and their HTML.

Rules (CONTRACT.md "Embeds", "Reader page"): ``image`` is an ``<img>`` (https only, alt text,
lazy), ``link`` a link out. ``video`` and ``map`` are click-to-load: a placeholder that makes no
third-party request until the reader asks, then an iframe on the provider's player (YouTube via
youtube-nocookie.com, Vimeo with ``dnt=1``, Dailymotion, Datawrapper, OpenStreetMap's
``/export/embed.html``), always one of ``policy.FRAME_SOURCES``; a video or map URL with no known
player, and every ``social`` post (their players need third-party scripts, which the policy
refuses), is a card linking out. ``player_url`` here and ``playerUrl`` in ``static/reader.js``
are the same function, and the browser tests compare their output; change both together.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

from events.embeds import EmbedKind
from services.reader.policy import LINK_REL, esc

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
"""A reader-facing name for each host an embed may come from (a subdomain counts)."""
PLAYABLE: frozenset[EmbedKind] = frozenset({"video", "map"})
"""The kinds that may load a player in place; the others only ever link out."""
_YOUTUBE_ID = re.compile(r"[A-Za-z0-9_-]{11}")
_DAILYMOTION_ID = re.compile(r"[A-Za-z0-9]+")


def _host_is(host: str, domain: str) -> bool:
    return host == domain or host.endswith("." + domain)


def provider(url: str) -> str:
    """A reader-facing name for an embed's host ("YouTube"), or the host itself."""
    host = (urlsplit(url).hostname or "").lower()
    for domain, name in PROVIDERS:
        if _host_is(host, domain):
            return name
    return host.removeprefix("www.")


def player_url(kind: EmbedKind, url: str) -> str | None:
    """The iframe a click-to-load embed becomes, or None when it can only link out."""
    if kind not in PLAYABLE:
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


def render_embed(embed: dict[str, Any]) -> str:
    """One embed: an image, a link card, or a click-to-load placeholder."""
    kind: EmbedKind = embed["kind"]
    url = str(embed["url"])
    if url[:8].lower() != "https://":
        # The decision accepts only https, its scheme in any case ("HTTPS://" too); never render
        # another scheme, whatever the store holds.
        return ""
    caption = embed.get("caption")
    alt = embed.get("alt")
    head = f'<figure class="embed embed-{esc(kind)}" data-embed-id="{esc(embed["embed_id"])}">'
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
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
    noun = "post" if kind == "social" else kind
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
