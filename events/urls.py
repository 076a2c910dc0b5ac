"""Embed URLs and the provider allow-list (CONTRACT.md "Event types" and "Details: Embeds", "Edges").

Rules, for every kind (each breach gives one reason; docs/embeds.md says why):
- the URL is written out in full as ``https://host/...``: any other scheme (``http``,
  ``javascript``, ``data``, ``ftp``) or none (``//host/...``, a path) is refused;
- no whitespace, control or invisible formatting character anywhere, and no backslash (browsers
  read ``\\`` as ``/``, so what we check would not be what readers load);
- no userinfo (``user@``, ``user:pass@``) and no explicit port, not even ``:443`` or an empty ``:``;
- a host that is a public DNS name in ASCII (internationalized names in their ``xn--`` form): not
  an IP address in any notation, not a single label (``localhost``, ``intranet``), not a name for
  private use (``.localhost``, ``.local``, ``.internal``, ``.arpa``), no empty label and no
  trailing dot.

``image`` and ``link`` take any such URL. ``video``, ``social`` and ``map`` take one only when its
host is a host of :data:`PROVIDERS` for that kind or a subdomain of one (``www.youtube.com``;
never ``evilyoutube.com`` or ``youtube.com.evil.net``), compared case-insensitively; an entry
with a path (``google.com/maps``) also needs the URL's path to be that path or under it
(``/maps``, ``/maps/...``), with no ``.`` or ``..`` segment.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final
from urllib.parse import urlsplit

PROVIDERS: Final[dict[str, tuple[str, ...]]] = {
    "video": (
        "youtube.com",
        "youtu.be",
        "youtube-nocookie.com",
        "vimeo.com",
        "dailymotion.com",
        "dai.ly",
    ),
    "social": (
        "x.com",
        "twitter.com",
        "bsky.app",
        "instagram.com",
        "facebook.com",
        "threads.net",
        "tiktok.com",
    ),
    "map": ("openstreetmap.org", "google.com/maps", "datawrapper.dwcdn.net"),
}
"""The providers each kind may embed from: a host (its subdomains count), optionally with a path."""

KINDS: Final = frozenset({"video", "image", "social", "map", "link"})

# Names for hosts on the reader's own machine or network (RFC 6761 "localhost", RFC 6762 ".local",
# RFC 8375 "home.arpa", ICANN's ".internal"): an embed there would have readers' browsers reach
# into their own networks.
_PRIVATE_USE: Final = frozenset({"localhost", "local", "internal", "arpa"})
# Letters, digits, "-" and, as browsers allow and some real hosts use, "_".
_LABEL: Final = re.compile(r"[a-z0-9_-]{1,63}")
# WHATWG URL reads a host whose last label is a number (decimal, or hex with "0x") as IPv4.
_NUMBER: Final = re.compile(r"[0-9]+|0x[0-9a-f]*")
_ASCII_REFUSED: Final = re.compile(r"[\x00-\x20\x7f\\]")


def refused_embed_url(kind: str, url: str) -> tuple[str, ...]:
    """Why ``url`` cannot be embedded as ``kind``: one reason each; empty when it can."""
    reasons: list[str] = []
    if kind not in KINDS:
        reasons.append(f"unknown embed kind {kind!r}")
    reasons += _refused_characters(url)
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed "[" IPv6 bracket
        return (*reasons, "malformed url")
    scheme = parts.scheme.lower()
    if scheme != "https":
        reasons.append(f"scheme {scheme}: is not https" if scheme else "not an absolute https url")
    elif not url[len("https:") :].startswith("//"):
        reasons.append("not written as https://host/…")
    host, refused = _host(parts.netloc)
    reasons += refused
    if host is not None and kind in PROVIDERS:
        reason = _refused_provider(kind, host, parts.path)
        if reason:
            reasons.append(reason)
    return tuple(reasons)


def _refused_characters(url: str) -> list[str]:
    """Whitespace, control and invisible characters, and backslashes, each named once."""
    if url.isascii():
        if not _ASCII_REFUSED.search(url):
            return []
        found = dict.fromkeys(_ASCII_REFUSED.findall(url))
    else:
        found = dict.fromkeys(c for c in url if _refused_character(c))
    return [_character_reason(c) for c in found]


def _refused_character(c: str) -> bool:
    # Cc: C0, DEL and C1 controls; Cf: invisible formatting such as bidi overrides and zero-width
    # joiners; Z*: every kind of space. None belongs in a URL as typed (percent-encode it).
    return c == "\\" or c.isspace() or unicodedata.category(c) in {"Cc", "Cf", "Zs", "Zl", "Zp"}


def _character_reason(c: str) -> str:
    if c == "\\":
        return "backslash in url"
    if c in " \t\n\r\f" or unicodedata.category(c) in {"Zs", "Zl", "Zp"}:
        return f"whitespace U+{ord(c):04X} in url"
    if unicodedata.category(c) == "Cf":
        return f"invisible character U+{ord(c):04X} in url"
    return f"control character U+{ord(c):04X} in url"


def _host(netloc: str) -> tuple[str | None, list[str]]:
    """The host of ``netloc``, lower-cased, when acceptable; and the reasons it is not."""
    reasons: list[str] = []
    if "@" in netloc:
        reasons.append("userinfo (user@) in url")
        netloc = netloc.rpartition("@")[2]
    if netloc.startswith("["):
        return None, [*reasons, "host is an IP address"]
    # Read from the raw text: urlsplit's .port is None for "host:" and raises for some others.
    host, colon, _ = netloc.partition(":")
    if colon:
        reasons.append("explicit port in url")
    host = host.lower()
    reason = _refused_host(host) if host else "no host"
    if reason:
        return None, [*reasons, reason]
    return (None if reasons else host), reasons


def _refused_host(host: str) -> str | None:
    """Why ``host`` (lower-cased) is not a public DNS name, if it is not."""
    if not host.isascii():
        return f"host {host} is not ASCII (write it as xn--…)"
    if host.endswith("."):
        return f"host {host} ends with a dot"
    labels = host.split(".")
    if _NUMBER.fullmatch(labels[-1]):
        return "host is an IP address"
    if not all(_LABEL.fullmatch(label) for label in labels) or len(host) > 253:
        return f"host {host} is not a valid DNS name"
    if len(labels) == 1 or labels[-1] in _PRIVATE_USE:
        return f"host {host} is not a public DNS name"
    return None


def _refused_provider(kind: str, host: str, path: str) -> str | None:
    """Why ``host`` and ``path`` are not under one of ``kind``'s providers, if they are not."""
    for provider in PROVIDERS[kind]:
        provider_host, slash, provider_path = provider.partition("/")
        if host != provider_host and not host.endswith("." + provider_host):
            continue
        if not slash:
            return None
        prefix = "/" + provider_path
        if (path == prefix or path.startswith(prefix + "/")) and not any(
            _dot_segment(segment) for segment in path.split("/")
        ):
            return None
        return f"{host} is an allowed {kind} provider only under {prefix}"
    return f"{host} is not an allowed {kind} provider"


def _dot_segment(segment: str) -> bool:
    # "/maps/../search" is "/search" once a browser resolves it; "%2e" is a dot to it too.
    return segment.lower().replace("%2e", ".") in (".", "..")
