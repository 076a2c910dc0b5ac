"""The page's static files, ``reader.js`` and ``reader.css``: read once, named by content hash.

A URL carrying the file's hash (``?v=``) is immutable and cached for a year; any other asks the
browser to revalidate (CONTRACT "Reader page"; a page at a version names the files it was
rendered with).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import ClassVar

STATIC = Path(__file__).resolve().parent / "static"
IMMUTABLE = "public, max-age=31536000, immutable"
"""A hashed asset URL's caching: a year, never revalidated (its bytes cannot change)."""


class Assets:
    """``reader.js`` and ``reader.css``, read once, served with a content hash for caching."""

    TYPES: ClassVar[dict[str, str]] = {
        "reader.js": "text/javascript; charset=utf-8",
        "reader.css": "text/css; charset=utf-8",
    }

    def __init__(self) -> None:
        self.files = {name: (STATIC / name).read_bytes() for name in self.TYPES}
        self.hashes = {n: hashlib.sha256(b).hexdigest()[:16] for n, b in self.files.items()}

    def headers(self, name: str, asked: str | None) -> dict[str, str]:
        """Cached for good when ``asked`` (the URL's ``v``) is the file's hash, else revalidated."""
        return {
            "Cache-Control": IMMUTABLE if asked == self.hashes[name] else "no-cache",
            "ETag": f'"{self.hashes[name]}"',
            "X-Content-Type-Options": "nosniff",
        }

    def url(self, name: str) -> str:
        """The file's URL with its content hash."""
        return f"/static/{name}?v={self.hashes[name]}"
