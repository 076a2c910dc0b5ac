"""The current answer of a public read, from ready bytes whenever this process can know it is.

Rules (CONTRACT.md "HTTP API" ``ETag`` and ``min_version``; second edition "Public reads at
breaking-news scale"):
- when ``Heads`` knows the story's current version (the change tail is current), a conditional
  request whose validator names it is answered 304 at once, and a ready answer at that version is
  served as it is: no store round trip either way;
- otherwise (a story not followed yet, a tail that is stale or lost, no ready answer at that
  version) the answer is built from the store, once for every reader asking at that moment, and
  kept; a store that is away is the store's 503, never a kept answer passed off as current;
- ``min_version`` is served from what is kept only when the known version has reached it; else
  it waits on the store (``ReadModel.wait_for``) as before, and an answer older than it is never
  served (a shared build that started earlier is built again).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Hashable

from fastapi import Request, Response
from prometheus_client import Counter

from services.http.heads import Heads
from services.http.pages import (
    Asked,
    Pages,
    Raw,
    Ready,
    Sent,
    answer,
    answer_raw,
    asked_of,
    etag_matches,
    not_modified,
)
from services.settings import Settings
from services.store.readmodel import ReadModel

NOT_MODIFIED_KEPT = 10_000
"""304 answers kept ready, one per (story, validator): forgotten all at once when full."""


def caching(settings: Settings, story: str) -> dict[str, str]:
    """The caching headers of a public read of ``story``: shared caches may keep it briefly."""
    return {
        "Cache-Control": (
            f"public, max-age=0, s-maxage={settings.cache_seconds}, "
            f"stale-while-revalidate={settings.stale_seconds}"
        ),
        "Vary": "Accept-Encoding",
        "Surrogate-Key": f"story-{story}",
        "Cache-Tag": f"story-{story}",
    }


class Current:
    """Public reads answered from ready bytes at the version the change tail says is current."""

    def __init__(
        self, settings: Settings, reads: ReadModel, heads: Heads, pages: Pages, answered: Counter
    ) -> None:
        self.settings = settings
        self.reads = reads
        self.heads = heads
        self.pages = pages
        self.answered = answered
        """Public reads by how they were answered: ``unchanged`` (a 304 from the tail's version
        alone), ``ready`` (kept bytes), ``built`` (from the store)."""
        self._unchanged = answered.labels("unchanged")
        self._ready = answered.labels("ready")
        self._made: dict[tuple[str, str], Raw] = {}

    def known(
        self, asked: Asked, kind: str, story: str, variant: Hashable, etag: Callable[[int], str]
    ) -> Raw | None:
        """The answer this process can give without the store, or None (build it).

        Both of its answers need the tail's word on the current version: a 304 when the
        request's ``If-None-Match`` names it, else the ready bytes kept at exactly it. This is
        the whole of a public read on a busy night, so it is also what ``services.http.app``'s
        fast path calls, with no framework between the socket and it.
        """
        known = self.heads.current(story, time.monotonic())
        if known is None:
            return None
        match = asked.get(b"if-none-match")
        if match is not None:
            tag = etag(known)
            if etag_matches(match.decode("latin-1"), tag):
                self._unchanged.inc()
                return self._not_modified(story, tag)
        ready = self.pages.get((kind, story, variant), known)
        if ready is None:
            return None
        self._ready.inc()
        return answer_raw(ready, asked)

    def _not_modified(self, story: str, tag: str) -> Raw:
        """The 304 for ``story`` at the validator ``tag``, made once per (story, tag) while kept
        (at most ``NOT_MODIFIED_KEPT``: a crowd revalidating one version costs a lookup)."""
        key = (story, tag)
        raw = self._made.get(key)
        if raw is None:
            if len(self._made) >= NOT_MODIFIED_KEPT:
                self._made.clear()
            raw = self._made[key] = not_modified({"ETag": tag, **caching(self.settings, story)})
        return raw

    async def respond(
        self,
        request: Request,
        kind: str,
        story: str,
        variant: Hashable,
        etag: Callable[[int], str],
        build: Callable[[], Awaitable[Ready]],
        wanted: int | None = None,
    ) -> Response:
        """The answer for one public read: 304, ready bytes, or a fresh build from the store."""
        known = self.heads.current(story, time.monotonic())
        if wanted and (known is None or known < wanted):
            await self.reads.wait_for(story, wanted)
        else:
            raw = self.known(asked_of(request), kind, story, variant, etag)
            if raw is not None:
                return Sent(raw)
        key = (kind, story, variant)
        ready = await self.pages.build(key, build)
        if wanted and ready.version < wanted:  # a build that began before the wait ended
            ready = await build()
            self.pages.put(key, ready)
        self.heads.learned(story, ready.version)
        self.answered.labels("built").inc()
        return answer(ready, request)
