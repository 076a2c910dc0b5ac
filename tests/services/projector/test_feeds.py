"""The projector's feeds on the real server: the group made once, trimming that keeps every
event still needed."""

from __future__ import annotations

from events.decide import parse_command, parse_open
from services.projector.feeds import ensure_groups, trim_feeds
from services.store import keys
from services.store.keys import GROUP
from services.store.record import Store


async def test_making_the_groups_again_keeps_their_progress(world: tuple) -> None:
    """A projector that starts beside others does not rewind the group (BUSYGROUP is fine)."""
    _, client, store = world
    await store.append("g", parse_open({"story": "g", "title": "G"}), actor="editor:a")
    feed = keys.feed_of("g")
    await client.xreadgroup(GROUP, "c", {feed: ">"})
    before = await client.xinfo_groups(feed)
    await ensure_groups(client)
    assert await client.xinfo_groups(feed) == before


async def test_trimming_drops_only_what_the_group_has_acknowledged(world: tuple) -> None:
    """Acknowledged entries go; every entry still pending (or never delivered) stays."""
    _, client, store = world
    await open_with_entries(store, "t", 400)
    feed = keys.feed_of("t")
    got = await client.xreadgroup(GROUP, "c", {feed: ">"}, count=350)
    ids = [i for i, _ in got[0][1]]
    await client.xack(feed, GROUP, *ids[:300])
    await trim_feeds(client)
    left = [i for i, _ in await client.xrange(feed)]
    assert len(left) < 401  # trimmed (approximately: whole nodes at a time)
    assert set(ids[300:]) <= set(left)  # delivered, not acknowledged
    assert len(left) - left.index(ids[300]) == 401 - 300  # and all that came after


async def open_with_entries(store: Store, story: str, entries: int) -> None:
    await store.append(story, parse_open({"story": story, "title": "T"}), actor="editor:a")
    for n in range(entries):
        data = {"body": f"<p>{n}</p>"}
        await store.append(story, parse_command("entry.published", data), actor="editor:a")
