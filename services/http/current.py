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
from services.http.pages import Pages, Ready, answer, etag_matches
from services.settings import Settings
from services.store.readmodel import ReadModel


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
            known = None  # past what the tail had told: build from the store
        key = (kind, story, variant)
        if known is not None:
            match = request.headers.get("if-none-match")
            if match is not None and etag_matches(match, etag(known)):
                self.answered.labels("unchanged").inc()
                return Response(
                    status_code=304,
                    headers={"ETag": etag(known), **caching(self.settings, story)},
                )
            ready = self.pages.get(key, known)
            if ready is not None:
                self.answered.labels("ready").inc()
                return answer(ready, request)
        ready = await self.pages.build(key, build)
        if wanted and ready.version < wanted:  # a build that began before the wait ended
            ready = await build()
            self.pages.put(key, ready)
        self.heads.learned(story, ready.version)
        self.answered.labels("built").inc()
        return answer(ready, request)
