"""Reading the projected state: a story's page, the list of stories, waiting for a version.

Pages come from the projector's ordered index (``order``) and per-entry hash fields, read in one
atomic script (``read_page.lua``: a page never mixes two versions), and are assembled by ``projections.story.page``, the same function that renders a fresh fold, so the API
and a replay answer alike.
"""

from __future__ import annotations

import asyncio
import time

import orjson
from pydantic import JsonValue

from events.errors import ProjectionLagging, UnknownStory
from projections.story import page
from services.store import keys, scripts
from services.store.connection import Client, reachable

MIN_VERSION_WAIT = 5.0
"""Seconds ``min_version`` waits for the projector (CONTRACT: up to 5 s, then 504)."""


class ReadModel:
    """Reads of current state, public (no token)."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self._read_page = client.register_script(scripts.READ_PAGE)

    async def version(self, story: str) -> int:
        """The projected version of a story (0 when the projector has not seen it)."""
        with reachable():
            raw = await self.client.hget(keys.meta(story), "version")
        return int(raw) if raw else 0

    async def wait_for(
        self, story: str, min_version: int, timeout: float = MIN_VERSION_WAIT
    ) -> int:
        """Wait until the projection of ``story`` reaches ``min_version``: read-your-writes."""
        deadline = time.monotonic() + timeout
        delay = 0.002
        while True:
            version = await self.version(story)
            if version >= min_version:
                return version
            if time.monotonic() >= deadline:
                raise ProjectionLagging(
                    f"the projection of {story!r} is at version {version}, not yet {min_version}",
                    {"projected_version": version, "min_version": min_version},
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    async def story(self, story: str, limit: int, before: int | None) -> dict[str, JsonValue]:
        """One page of the story's state, as the contract's story-state object."""
        high = f"({before}" if before is not None else "+inf"
        names, argv = scripts.read_page(story, high=high, count=limit + 1)
        with reachable():
            read: list[bytes | None] = await self._read_page(names, argv)
        meta, pinned, key_events, *found = read if read[0] is not None else (None, None, None)
        if meta is None:
            raise UnknownStory(f"story {story!r} does not exist")
        return page(
            orjson.loads(meta),
            orjson.loads(pinned) if pinned else None,
            orjson.loads(key_events) if key_events else [],
            [orjson.loads(raw) for raw in found if raw is not None],
            limit,
        )

    async def stories(self, limit: int = 1000) -> list[JsonValue]:
        """Stories, newest activity first: ``story, title, status, version, updated_at``."""
        with reachable():
            async with self.client.pipeline(transaction=False) as pipe:
                for p in range(keys.partitions()):
                    pipe.zrevrange(keys.stories(p), 0, limit - 1, withscores=True)
                ranked = sorted(
                    (pair for part in await pipe.execute() for pair in part),
                    key=lambda pair: pair[1],
                    reverse=True,
                )[:limit]
            async with self.client.pipeline(transaction=False) as pipe:
                for name, _ in ranked:
                    pipe.hget(keys.meta(name.decode()), "json")
                metas = await pipe.execute()
        listed: list[JsonValue] = []
        for raw in metas:
            if raw is None:
                continue
            m = orjson.loads(raw)
            listed.append({k: m[k] for k in ("story", "title", "status", "version", "updated_at")})
        return listed
