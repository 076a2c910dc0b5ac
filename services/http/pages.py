"""Public reads as ready bytes: built once per (story, version, page), compressed once, cached.

CONTRACT.md, second edition, "Public reads at breaking-news scale". Rules:
- a ``Ready`` is one answer at one version: its body, its validators (a strong ``ETag`` that
  changes with the version, ``Last-Modified`` from the story's ``updated_at``) and its headers
  (``Cache-Control: public, max-age=0, s-maxage=N, stale-while-revalidate=M``, ``Vary:
  Accept-Encoding``, ``Surrogate-Key`` and ``Cache-Tag`` naming ``story-<id>``); its brotli and
  gzip forms are made the first time a reader asks for them, then kept;
- bodies under ``COMPRESS_FROM`` bytes go as they are; otherwise brotli when the reader accepts
  it (it is the smaller), else gzip, else identity (RFC 9110 12.5.3, ``q=0`` refuses);
- one ``ETag`` covers every coding of a version: a cache keeps them apart by ``Vary``, and no
  range requests are served, so a strong validator shared across codings can never splice
  two of them together;
- ``answer`` is the one place a ready page becomes a response: 304 when ``If-None-Match``
  matches (compared weakly, RFC 9110 13.1.2) or, without it, when ``If-Modified-Since`` is not
  older than ``Last-Modified``; ``HEAD`` gets the same status and headers with no body;
- ``Pages`` keeps the newest ``Ready`` of each (kind, story, variant), at most ``MAX_BYTES`` in
  all, the least recently served dropped first; ``build`` runs once for all the readers that ask
  at the same moment (a crowd arriving on a new version renders it once).
"""

from __future__ import annotations

import asyncio
import functools
import gzip
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import NamedTuple

import brotli
from fastapi import Request, Response
from starlette.types import Scope

COMPRESS_FROM = 1024
"""Bodies this long or longer are sent compressed to a reader who accepts it (CONTRACT: 1 KiB)."""
BROTLI_QUALITY = 5
"""brotli's quality for pages: within 1 % of quality 9's size at a sixth of its time (a page is
compressed once per version, on the request that first asks)."""
GZIP_LEVEL = 6
MAX_BYTES = 64 * 1024 * 1024
"""What the ready pages of one process may hold in all, every coding counted."""

Key = tuple[str, str, Hashable]
"""(kind, story, variant): which answer, of which story, for which page of it."""

RawHeaders = list[tuple[bytes, bytes]]
"""Response headers as ASGI sends them: lower-case names, latin-1 bytes."""


class Raw(NamedTuple):
    """A whole answer as ASGI sends it: what the fast path writes with no framework between."""

    status: int
    headers: RawHeaders
    body: bytes


Asked = Mapping[bytes, bytes]
"""A request's headers as ASGI gives them (lower-case names, bytes), made a map once: all a
ready answer reads of its request (``asked_of``)."""

Quick = Callable[[Scope, Asked, str], Raw | None]
"""A public read's fast path: given the request's scope, its headers and the story of its path,
the answer this process can give without the store or the framework, or None (the route
answers it)."""


def asked_of(request: Request) -> Asked:
    """The headers of a Starlette request as an ``Asked``."""
    return dict(request.scope["headers"])


class Sent(Response):
    """A ``Raw`` as a Starlette response, for a FastAPI route that answers one."""

    def __init__(self, raw: Raw) -> None:  # no super().__init__: everything is made already
        self.status_code = raw.status
        self.raw_headers = raw.headers
        self.body = raw.body
        self.background = None


def raw_headers(headers: dict[str, str]) -> RawHeaders:
    """``headers`` as ASGI's list of (name, value) bytes."""
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


def not_modified(headers: dict[str, str]) -> Raw:
    """A 304 with ``headers`` (the validators and caching of the 200 it stands for)."""
    return Raw(304, raw_headers(headers), b"")


def http_date(iso: str) -> str:
    """An ISO 8601 time as an HTTP date (``Last-Modified``)."""
    return format_datetime(datetime.fromisoformat(iso), usegmt=True)


@functools.lru_cache(maxsize=256)  # a few browsers' headers make nearly every request's
def coding(accept: str) -> str | None:
    """The coding to send for ``Accept-Encoding``: ``br``, else ``gzip``, else None (identity)."""
    weights: dict[str, float] = {}
    for part in accept.lower().split(","):
        name, _, params = part.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        weights[name.strip()] = q
    star = weights.get("*", 0.0)
    for name in ("br", "gzip"):
        if weights.get(name, star) > 0:
            return name
    return None


def etag_matches(header: str, etag: str) -> bool:
    """Whether ``If-None-Match`` names ``etag`` (or ``*``), compared weakly (RFC 9110 13.1.2)."""
    if header == etag:  # what a browser or a cache revalidating one copy sends
        return True
    tags = {t.strip().removeprefix("W/") for t in header.split(",")}
    return etag in tags or "*" in tags


@dataclass(eq=False)
class Ready:
    """One answer at one version: body, validators, headers, and its compressed forms."""

    version: int
    body: bytes
    media_type: str
    etag: str
    headers: dict[str, str]
    last_modified: str | None = None
    encoded: dict[str, bytes] = field(default_factory=dict)
    _raw: dict[str | None, Raw] = field(default_factory=dict)
    """The 200 in each coding (None: identity) and the 304 (``"304"``), made once each."""

    def form(self, name: str | None) -> tuple[str | None, bytes]:
        """The body in coding ``name`` (made once), or as it is when short or not accepted."""
        if name is None or len(self.body) < COMPRESS_FROM:
            return None, self.body
        made = self.encoded.get(name)
        if made is None:
            if name == "br":
                made = brotli.compress(self.body, quality=BROTLI_QUALITY)
            else:
                made = gzip.compress(self.body, GZIP_LEVEL, mtime=0)
            self.encoded[name] = made
        return name, made

    def compress_now(self) -> None:
        """Make every coding now at brotli's best quality (a static file: once per process)."""
        self.encoded["br"] = brotli.compress(self.body, quality=11)
        self.form("gzip")

    def all_headers(self) -> dict[str, str]:
        """The headers of the 200 and of the 304 alike."""
        headers = {"ETag": self.etag, **self.headers}
        if self.last_modified is not None:
            headers["Last-Modified"] = self.last_modified
        return headers

    def raw(self, name: str | None) -> Raw:
        """The 200 in coding ``name`` (as ``form`` picks it), headers and body made once."""
        kept = self._raw.get(name)
        if kept is None:
            coded, body = self.form(name)
            headers = self.all_headers()
            if coded is not None:
                headers["Content-Encoding"] = coded
            headers["Content-Type"] = self.media_type
            headers["Content-Length"] = str(len(body))
            kept = self._raw[name] = Raw(200, raw_headers(headers), body)
        return kept

    def raw_not_modified(self) -> Raw:
        """The 304 for this version, made once."""
        kept = self._raw.get("304")
        if kept is None:
            kept = self._raw["304"] = not_modified(self.all_headers())
        return kept

    def fresh_for(self, asked: Asked) -> bool:
        """Whether the reader's copy is this one: a 304 (RFC 9110 13.1.2, 13.1.3 order)."""
        match = asked.get(b"if-none-match")
        if match is not None:
            return etag_matches(match.decode("latin-1"), self.etag)
        since = asked.get(b"if-modified-since")
        if since is None or self.last_modified is None:
            return False
        try:
            return parsedate_to_datetime(since.decode("latin-1")) >= parsedate_to_datetime(
                self.last_modified
            )
        except (TypeError, ValueError):
            return False


def answer_raw(ready: Ready, asked: Asked) -> Raw:
    """``ready`` as the answer to a request with headers ``asked``: 304, or 200 in the coding it
    accepts (HEAD: the same status and headers; uvicorn sends no body)."""
    if ready.fresh_for(asked):
        return ready.raw_not_modified()
    return ready.raw(coding(asked.get(b"accept-encoding", b"").decode("latin-1")))


def answer(ready: Ready, request: Request) -> Response:
    """``answer_raw`` as a Starlette response."""
    return Sent(answer_raw(ready, asked_of(request)))


class Pages:
    """The newest ``Ready`` of each key, bounded in bytes; one build at a time per key.

    A kept answer is counted at twice its body (the body, and at most as much again for its
    compressed forms, which are never larger in sum for text), so the bound holds before any
    reader has asked for a coding.
    """

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._ready: OrderedDict[Key, Ready] = OrderedDict()
        self._bytes = 0
        self._building: dict[Key, asyncio.Task[Ready]] = {}
        self.hits = 0
        self.builds = 0

    def get(self, key: Key, version: int) -> Ready | None:
        """The ready answer for ``key`` at exactly ``version``, if one is kept."""
        ready = self._ready.get(key)
        if ready is None or ready.version != version:
            return None
        self._ready.move_to_end(key)
        self.hits += 1
        return ready

    def put(self, key: Key, ready: Ready) -> None:
        """Keep ``ready`` unless a newer version of ``key`` is kept already."""
        kept = self._ready.pop(key, None)
        if kept is not None:
            self._bytes -= 2 * len(kept.body)
            if kept.version > ready.version:
                ready = kept
        self._ready[key] = ready
        self._bytes += 2 * len(ready.body)
        while self._bytes > self.max_bytes and len(self._ready) > 1:
            _, dropped = self._ready.popitem(last=False)
            self._bytes -= 2 * len(dropped.body)

    async def build(self, key: Key, make: Callable[[], Awaitable[Ready]]) -> Ready:
        """``make()``'s answer, shared with every caller asking for ``key`` while it runs.

        The build runs as its own task, so a reader who goes away mid-build cancels only their
        own wait, never the others'.
        """
        task = self._building.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._made(key, make))
            self._building[key] = task
        return await asyncio.shield(task)

    async def _made(self, key: Key, make: Callable[[], Awaitable[Ready]]) -> Ready:
        try:
            ready = await make()
        finally:
            del self._building[key]
        self.builds += 1
        self.put(key, ready)
        return ready
