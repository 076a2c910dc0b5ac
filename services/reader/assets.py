"""The page's static files, ``reader.js`` and ``reader.css``: read once, named by content hash.

Rules (CONTRACT.md "Reader page", second edition "Public reads at breaking-news scale"):
- each file is served at a name carrying its content hash (``/static/reader.<hash>.js``),
  immutable and cached for a year: a page at a version names the files it was rendered with, and
  a CDN that ignores query strings still keeps two builds apart. The plain name (and the first
  layout's ``?v=<hash>``) is still served, to be revalidated;
- the page runs no script of its own but ``loader``, a fixed inline script allowed by its
  SHA-256 (``loader_source``) that adds ``reader.js`` with its Subresource Integrity digest;
  under ``'strict-dynamic'`` nothing else can run: not an injected inline script (wrong hash),
  not an injected ``<script src>`` (inserted by the parser, not by a trusted script);
- so every reader at a version gets the same bytes: no nonce, nothing per response.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import ClassVar

STATIC = Path(__file__).resolve().parent / "static"
IMMUTABLE = "public, max-age=31536000, immutable"
"""A hashed asset URL's caching: a year, never revalidated (its bytes cannot change)."""
REVALIDATE = "public, no-cache"
"""A plain asset URL's caching: kept, but asked about each time (its bytes change on deploy)."""


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


class Assets:
    """``reader.js`` and ``reader.css``, read once, each with its content hash and digest."""

    TYPES: ClassVar[dict[str, str]] = {
        "reader.js": "text/javascript; charset=utf-8",
        "reader.css": "text/css; charset=utf-8",
    }

    def __init__(self) -> None:
        self.files = {name: (STATIC / name).read_bytes() for name in self.TYPES}
        self.hashes = {n: hashlib.sha256(b).hexdigest()[:16] for n, b in self.files.items()}
        self.integrity = {
            n: f"sha384-{_b64(hashlib.sha384(b).digest())}" for n, b in self.files.items()
        }
        self.names = {self.hashed(n): n for n in self.files} | {n: n for n in self.files}
        """Every name a file is served at (hashed or plain), to the file's own name."""
        src, digest = json.dumps(self.url("reader.js")), json.dumps(self.integrity["reader.js"])
        self.loader = (
            '(()=>{const s=document.createElement("script");'
            f"s.src={src};s.integrity={digest};document.body.append(s)}})()"
        )
        """The page's one inline script: it adds ``reader.js``, checked by its digest."""
        self.loader_source = f"'sha256-{_b64(hashlib.sha256(self.loader.encode()).digest())}'"
        """The policy's source expression that allows ``loader`` and nothing else inline."""

    def hashed(self, name: str) -> str:
        """``reader.js`` as ``reader.<hash>.js``."""
        stem, _, ext = name.rpartition(".")
        return f"{stem}.{self.hashes[name]}.{ext}"

    def immutable(self, served: str, asked: str | None) -> bool:
        """Whether ``served`` (with the URL's ``v``) names the file's current bytes for good."""
        name = self.names[served]
        return served != name or asked == self.hashes[name]

    def url(self, name: str) -> str:
        """The file's URL, named by its content hash."""
        return f"/static/{self.hashed(name)}"
