"""Upgrading a store to more partitions (``dateline partitions upgrade --to N``).

Rules (docs/operations.md "Outgrowing one Redis"):
- offline: every Dateline process is stopped first. The upgrade refuses to start while a
  projector's reader is connected, and fences whatever still runs: from its first step new
  processes refuse the store (``keys.REPARTITION_KEY``) and every old mark is replaced, so an
  append of a process still running on the old layout is refused by ``append.lua`` (503);
- a story's keys move whole to its partition under the new count (``DUMP``, ``RESTORE …
  REPLACE`` under the new tag, the same TTL); a partition's own streams and indexes are split by
  story, each entry under its own id (a new partition's stories all come from one old
  partition, since the new count is a multiple of the old, so ids stay in order);
- the projectors' group on a new feed starts just before the first entry the old group had
  not acknowledged, so nothing delivered and not folded is skipped (``project.lua`` skips what
  it had folded: exactly once in effect); the gateways' partition streams keep their entries, and
  a reader resumes from its story's own changes;
- resumable: a stopped upgrade is run again and goes on. Until the new count is set (the
  flip), a run copies again from the untouched old keys (``REPLACE``; the new partition keys
  are emptied first); after it, a run only deletes what is left of the old layout;
- nothing of the record is changed: versions, hashes and envelopes are the same bytes, so
  ``/verify`` and every export's chain head are what they were.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, cast

import orjson
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from events.errors import StoreUnavailable, UsageError
from services.store import keys
from services.store.connection import Client, reachable
from services.store.keys import GROUP, Layout

PARTITION_KEYS: tuple[Callable[[int], str], ...] = (
    keys.feed,
    keys.partition_changes,
    keys.dead,
    keys.parked,
    keys.stories,
    keys.mark,
    keys.acked,
)
"""A partition's own keys (besides its stories' keys)."""
CHUNK = 500
"""Keys or entries moved per round trip."""
_LAST_SEQ = 2**64 - 1


@dataclass(slots=True)
class Moved:
    """What an upgrade did."""

    before: int
    after: int
    stories: int = 0
    keys: int = 0
    entries: int = 0
    deleted: int = 0
    seconds: float = 0.0


def _prefix(layout: Layout, p: int) -> str:
    return f"dateline:{{{layout.tags[p]}}}"


def _at(name: str, old: Layout, new: Layout, p: int, q: int) -> str:
    """``name`` (a key of old partition ``p``) as the same key of new partition ``q``."""
    return _prefix(new, q) + name[len(_prefix(old, p)) :]


def _renamed(name: str, old: Layout, new: Layout, p: int, story: str) -> str:
    """``name`` (a key of old partition ``p``) under ``story``'s partition in ``new``."""
    return _at(name, old, new, p, zlib.crc32(story.encode()) % new.count)


def _story_of(fields: dict[bytes, bytes]) -> str:
    """The story a partition stream's entry is about (feed and changes: ``s``; dead: the letter)."""
    if b"s" in fields:
        return fields[b"s"].decode()
    return str(orjson.loads(fields[b"letter"])["story"])


def _before(entry_id: bytes) -> str:
    """The id just before ``entry_id``: a group placed there delivers ``entry_id`` next."""
    ms, seq = (int(part) for part in entry_id.decode().split("-"))
    return f"{ms}-{seq - 1}" if seq else f"{ms - 1}-{_LAST_SEQ}"


async def _keys_of(client: Client, prefix: str) -> AsyncIterator[str]:
    """Every key that starts with ``prefix`` (one partition's tag: one slot on a cluster)."""
    if isinstance(client, RedisCluster):
        slot = key_slot(prefix.encode())
        node = client.nodes_manager.get_node_from_slot(slot)
        found = cast(
            "list[bytes]",
            await client.execute_command(
                "CLUSTER", "GETKEYSINSLOT", slot, 2**31 - 1, target_nodes=node
            ),
        )
        for name in found:
            if name.decode().startswith(prefix):
                yield name.decode()
        return
    async for name in client.scan_iter(match=f"{prefix}*", count=1_000):
        yield name.decode()


async def _copy_keys(client: Client, names: list[tuple[str, str]]) -> None:
    """``DUMP`` each ``(old, new)`` and ``RESTORE`` it as ``new``, with its TTL."""
    async with client.pipeline(transaction=False) as pipe:
        for old, _ in names:
            pipe.dump(old)
            pipe.pttl(old)
        got = await pipe.execute()
    async with client.pipeline(transaction=False) as pipe:
        for (_, new), dumped, ttl in zip(names, got[::2], got[1::2], strict=True):
            if dumped is not None:  # gone meanwhile (an idempotency record's TTL)
                pipe.restore(new, max(int(ttl), 0), dumped, replace=True)
        await pipe.execute()


async def _reader_connected(client: Client) -> bool:
    """Whether a projector's feed reader is connected to this store: to this database of one
    server (its other databases are other stores), or to any primary of a cluster."""
    if isinstance(client, RedisCluster):
        await client.initialize()
        listed: list[dict[str, Any]] = []
        for node in client.get_primaries():
            listed += await client.client_list(_type="normal", target_nodes=node)
        mine = "0"
    else:
        mine = str((await client.client_info()).get("db", 0))
        listed = await client.client_list(_type="normal")
    return any(
        str(c.get("name", "")).startswith("projector-reader:") and str(c.get("db", 0)) == mine
        for c in listed
    )


async def _split_streams(client: Client, old: Layout, new: Layout, p: int, moved: Moved) -> None:
    """Split old partition ``p``'s streams and indexes over the new partitions, by story."""
    for key_of in (keys.feed, keys.partition_changes, keys.dead):
        name = key_of(p)
        start = "-"
        while True:
            entries = cast(
                "list[tuple[bytes, dict[bytes, bytes]]]",
                await client.xrange(name, min=start, max="+", count=CHUNK),
            )
            if not entries:
                break
            async with client.pipeline(transaction=False) as pipe:
                for entry_id, fields in entries:
                    target = _renamed(name, old, new, p, _story_of(fields))
                    pipe.xadd(target, fields, id=entry_id)  # type: ignore[arg-type]
                await pipe.execute()
            moved.entries += len(entries)
            start = "(" + entries[-1][0].decode()
        if key_of is keys.feed:
            await _place_groups(client, name, old, new, p)
    parked = cast("dict[bytes, bytes]", await client.hgetall(keys.parked(p)))
    for story, letter in parked.items():
        await client.hset(_renamed(keys.parked(p), old, new, p, story.decode()), story, letter)
    scored = cast(
        "list[tuple[bytes, float]]", await client.zrange(keys.stories(p), 0, -1, withscores=True)
    )
    for i in range(0, len(scored), CHUNK):
        async with client.pipeline(transaction=False) as pipe:
            for story, score in scored[i : i + CHUNK]:
                target = _renamed(keys.stories(p), old, new, p, story.decode())
                pipe.zadd(target, {story: score})
            await pipe.execute()


async def _place_groups(client: Client, feed: str, old: Layout, new: Layout, p: int) -> None:
    """The projectors' group on every new feed made from ``feed``, placed just before the
    first entry the old group had not acknowledged (or where it had read up to)."""
    if not await client.exists(feed):
        return  # never read: the projectors make their groups when they start
    groups = [g for g in await client.xinfo_groups(feed) if g["name"] in (GROUP, GROUP.encode())]
    start: str = "0-0"
    if groups:
        group = groups[0]
        start = _bytes(group["last-delivered-id"]).decode()
        pending = await client.xpending(feed, GROUP)
        if pending["pending"]:
            start = _before(_bytes(pending["min"]))
    for q in _split_into(p, old, new):
        await client.xgroup_create(_at(feed, old, new, p, q), GROUP, id=start, mkstream=True)


def _split_into(p: int, old: Layout, new: Layout) -> range:
    """The new partitions old partition ``p`` splits into: those ``q`` with ``q % old == p``
    (``crc % new % old == crc % old`` when ``old`` divides ``new``)."""
    return range(p, new.count, old.count)


def _bytes(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


async def _state(client: Client) -> tuple[int, dict[str, Any] | None]:
    async with client.pipeline(transaction=False) as pipe:
        pipe.get(keys.PARTITIONS_KEY)
        pipe.get(keys.REPARTITION_KEY)
        raw, state = await pipe.execute()
    count = int(raw) if raw is not None else keys.LEGACY_PARTITIONS
    return count, (orjson.loads(state) if state is not None else None)


async def _store_id(client: Client, layout: Layout) -> str | None:
    """The one id every partition of ``layout`` carries (None: a new store, no marks at all)."""
    keys.adopt(layout.count)
    async with client.pipeline(transaction=False) as pipe:
        for p in range(layout.count):
            pipe.get(keys.mark(p))
        found = {None if m is None else m.decode() for m in await pipe.execute()}
    if found == {None}:
        return None
    if len(found) != 1 or None in found:
        raise StoreUnavailable(
            f"the store's partitions carry different ids ({sorted(map(str, found))}): it is not"
            " one Dateline record, and is not upgraded",
            {"store": "lost"},
        )
    return found.pop()


async def upgrade(client: Client, to: int, say: Callable[[str], None] = print) -> Moved:
    """Upgrade the store at ``client`` to ``to`` partitions (or finish a stopped upgrade)."""
    with reachable():
        return await _upgrade(client, to, say)


async def _upgrade(client: Client, to: int, say: Callable[[str], None]) -> Moved:
    began = time.monotonic()
    count, state = await _state(client)
    if state is None:
        if to not in keys.COUNTS:
            raise UsageError(f"--to must be one of {', '.join(map(str, keys.COUNTS))}, not {to}")
        if to == count:
            say(f"the store already has {count} partitions: nothing to do")
            return Moved(count, count)
        if to < count:
            raise UsageError(f"the store has {count} partitions; it can only grow, not to {to}")
        old, new = keys.layout(count), keys.layout(to)
        store_id = await _store_id(client, old)
        if store_id is None:  # a new store: nothing to move
            await client.set(keys.PARTITIONS_KEY, to)
            say(f"a new store: it has {to} partitions from now on")
            return Moved(count, to)
        if await _reader_connected(client):
            raise UsageError(
                "a projector is connected to the store: stop every Dateline process"
                " (serve, api, projector, gateway) before the upgrade"
            )
        state = {"from": count, "to": to, "store": store_id, "step": "copying"}
        if not await client.set(keys.REPARTITION_KEY, orjson.dumps(state), nx=True):
            raise UsageError("another upgrade started at the same time: let it finish")
    elif state["to"] != to:
        raise UsageError(
            f"an upgrade to {state['to']} partitions was stopped: finish it first"
            f" (dateline partitions upgrade --to {state['to']})"
        )
    old, new = keys.layout(int(state["from"])), keys.layout(int(state["to"]))
    keys.adopt(old.count)  # this process names the old layout's keys; the new ones by ``_at``
    moved = Moved(old.count, new.count)
    fence = f"upgrading:{state['store']}"
    if state["step"] == "copying":
        say(f"copying {old.count} partitions into {new.count} (store {state['store']})")
        await _copy(client, old, new, fence, str(state["store"]), moved)
        state["step"] = "cleaning"
        await client.set(keys.REPARTITION_KEY, orjson.dumps(state))
    await client.set(keys.PARTITIONS_KEY, new.count)  # the flip: new processes use the new layout
    say(f"the store has {new.count} partitions; deleting the old layout's keys")
    for p in range(old.count):
        names = [name async for name in _keys_of(client, _prefix(old, p) + ":")]
        for i in range(0, len(names), CHUNK):
            async with client.pipeline(transaction=False) as pipe:
                for name in names[i : i + CHUNK]:
                    pipe.delete(name)
                moved.deleted += sum(await pipe.execute())
    await client.delete(keys.REPARTITION_KEY)
    moved.seconds = time.monotonic() - began
    say(
        f"upgraded to {new.count} partitions: {moved.stories} stories, {moved.keys} keys and"
        f" {moved.entries} stream entries moved, {moved.deleted} old keys deleted"
        f" in {moved.seconds:.1f} s"
    )
    return moved


async def _copy(
    client: Client, old: Layout, new: Layout, fence: str, store_id: str, moved: Moved
) -> None:
    """Fence the old layout, empty the new one's partition keys (a stopped run may have left
    some), and copy every story and partition key into the new layout; then mark it."""
    async with client.pipeline(transaction=False) as pipe:
        for p in range(old.count):
            pipe.set(keys.mark(p), fence)  # appends on the old layout: refused from now on
        for q in range(new.count):
            for key_of in PARTITION_KEYS:
                pipe.delete(_at(key_of(0), old, new, 0, q))
        await pipe.execute()
    for p in range(old.count):
        prefix = _prefix(old, p)
        stories: set[str] = set()
        batch: list[tuple[str, str]] = []
        async for name in _keys_of(client, f"{prefix}:s:"):
            story = name[len(prefix) + 3 :].split(":", 1)[0]
            stories.add(story)
            batch.append((name, _renamed(name, old, new, p, story)))
            if len(batch) >= CHUNK:
                await _copy_keys(client, batch)
                moved.keys += len(batch)
                batch = []
        async for name in _keys_of(client, f"{prefix}:idem:"):
            record = cast("bytes | None", await client.get(name))
            if record is not None:  # fingerprint, newline, the envelope it answered with
                story = str(orjson.loads(record.split(b"\n", 1)[1])["story"])
                batch.append((name, _renamed(name, old, new, p, story)))
        await _copy_keys(client, batch)
        moved.keys += len(batch)
        moved.stories += len(stories)
        await _split_streams(client, old, new, p, moved)
    async with client.pipeline(transaction=False) as pipe:
        for q in range(new.count):
            pipe.set(_at(keys.mark(0), old, new, 0, q), store_id)
        await pipe.execute()
