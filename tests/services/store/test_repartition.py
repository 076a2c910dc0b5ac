"""More partitions: balanced tags that spread over a cluster's primaries, and the upgrade of a
16-partition store that moves every story and changes nothing of the record.

The upgrades run on stores of their own (a flushed database; a 3+3 cluster of its own): they
move every key of the store. Each test puts this process back on 16 partitions after it."""

from __future__ import annotations

import asyncio
import statistics
import zlib
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import redis.asyncio as redis
from redis.crc import key_slot

from events.decide import parse_command, parse_open
from events.errors import StoreUnavailable, UsageError
from services.audit.verify import verify
from services.projector.consumers import Consumers
from services.projector.fold import Projector
from services.store import identity, keys, repartition
from services.store.connection import Client, connect
from services.store.localcluster import LocalCluster, slot_ranges
from services.store.record import Keyed, Store
from tests.services.cli.dateline import run_module
from tests.services.projector.conftest import assert_state_is_a_fresh_fold, wait_projected


@pytest.fixture(autouse=True)
def legacy_layout() -> Iterator[None]:
    keys.adopt(keys.LEGACY_PARTITIONS)
    yield
    keys.adopt(keys.LEGACY_PARTITIONS)


def _primary_of(slot: int, ranges: list[tuple[int, int]]) -> int:
    return next(n for n, (low, high) in enumerate(ranges) if low <= slot <= high)


def _stories_per_primary(count: int, stories: int, primaries: int) -> list[int]:
    layout, ranges = keys.layout(count), slot_ranges(primaries)
    per: Counter[int] = Counter()
    for n in range(stories):
        tag = layout.tags[zlib.crc32(f"story-{n}".encode()) % count]
        per[_primary_of(key_slot(tag.encode()), ranges)] += 1
    return [per[n] for n in range(primaries)]


def test_each_balanced_tag_lies_in_its_partitions_share_of_the_slots() -> None:
    for count in (64, 256, 1024):
        share = 16_384 // count
        for p, tag in enumerate(keys.layout(count).tags):
            assert p * share <= key_slot(tag.encode()) < (p + 1) * share
    assert keys.layout(16).tags == tuple(str(p) for p in range(16))  # a 16-partition store's
    with pytest.raises(ValueError, match="not 32"):
        keys.layout(32)


def test_256_partitions_spread_1000_stories_over_3_primaries_within_1_1x_of_the_mean() -> None:
    """The figure the issue asks for, from the slot map ``valkey-cli --cluster create`` (and
    ``LocalCluster``) makes: 16 partitions fall 6/6/4 on 3 primaries; 256 fall 86/85/85."""
    for count, worst in ((16, 1.25), (256, 1.1), (1024, 1.1)):
        per = _stories_per_primary(count, 1_000, 3)
        assert max(per) / statistics.mean(per) <= worst, (count, per)
    on_16 = Counter(
        _primary_of(key_slot(tag.encode()), slot_ranges(3)) for tag in keys.layout(16).tags
    )
    assert sorted(on_16.values()) == [4, 6, 6]


# -- the upgrade ---------------------------------------------------------------------------------


def _keyed(story: str) -> Keyed:
    return Keyed.of("a-token", f"key-{story}", "POST", f"/stories/{story}/events", {"body": "k"})


async def _fill(store: Store, count: int, entries: int) -> dict[str, list[bytes]]:
    """``count`` stories of ``entries`` entries, one keyed append each; their records' bytes."""
    records = {}
    for n in range(count):
        story = f"moved-{n}"
        await store.append(story, parse_open({"story": story, "title": f"T{n}"}), actor="e:a")
        for i in range(entries):
            data = {"body": f"<p>{n}.{i}</p>", "entry_id": f"e{i}"}
            await store.append(story, parse_command("entry.published", data), actor="e:a")
        await store.append(
            story, parse_command("entry.published", {"body": "k"}), actor="e:a", keyed=_keyed(story)
        )
        records[story] = [e.model_dump_json().encode() for e in await store.read(story)]
    return records


async def _fold_all(url: str, client: Client, store: Store, records: dict[str, Any]) -> None:
    projector = Projector(client, store)
    consumers = Consumers(url, lambda: projector, "folder", claim_idle_ms=300)
    await consumers.start()
    try:
        await wait_projected(client, {s: len(r) for s, r in records.items()})  # type: ignore[arg-type]
    finally:
        await consumers.stop()


async def _old_keys(client: Client) -> list[bytes]:
    found = []
    for p in range(keys.LEGACY_PARTITIONS):
        found += [k async for k in client.scan_iter(match=f"dateline:{{{p}}}:*", count=1_000)]
    return found


async def _as_it_was(url: str, records: dict[str, list[bytes]], count: int) -> None:
    """After the upgrade, a new process finds every record as it was, verified, folded."""
    keys.adopt(keys.LEGACY_PARTITIONS)  # a process started after the upgrade
    store = Store(connect(url))
    try:
        await store.identify()
        assert keys.partitions() == count
        for story, record in records.items():
            assert [e.model_dump_json().encode() for e in await store.read(story)] == record
            assert (await verify(store, story)).ok
        await _fold_all(url, store.client, store, records)  # the events no projector had read
        for story in records:
            await assert_state_is_a_fresh_fold(store.client, store, story)  # type: ignore[arg-type]
        story = next(iter(records))  # a resent keyed append is answered as the first was
        again = await store.append(
            story, parse_command("entry.published", {"body": "k"}), actor="e:a", keyed=_keyed(story)
        )
        assert again.replayed
        assert await _old_keys(store.client) == []
    finally:
        await store.close()


class _Died(Exception):
    """The upgrade's process died here."""


@pytest.fixture
async def filled(isolated_url: str) -> tuple[str, dict[str, list[bytes]]]:
    store = Store(connect(isolated_url))
    records = await _fill(store, 12, 3)
    half = dict(list(records.items())[:6])
    await _fold_all(isolated_url, store.client, store, half)  # the rest stays on the feeds
    await store.close()
    return isolated_url, records


async def test_an_upgrade_to_64_partitions_moves_every_story_and_changes_no_byte_of_the_record(
    filled: tuple[str, dict[str, list[bytes]]],
) -> None:
    url, records = filled
    client = connect(url)
    said: list[str] = []
    moved = await repartition.upgrade(client, 64, said.append)
    await client.aclose()
    assert (moved.before, moved.after, moved.stories) == (16, 64, 12)
    assert "upgraded to 64 partitions" in said[-1]
    await _as_it_was(url, records, 64)


async def test_an_upgrade_stopped_half_way_fences_the_store_and_finishes_when_run_again(
    filled: tuple[str, dict[str, list[bytes]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, records = filled
    split = repartition._split_streams

    async def crashing(client: Client, old: Any, new: Any, p: int, moved: Any) -> None:
        if p == 5:
            raise _Died
        await split(client, old, new, p, moved)

    monkeypatch.setattr(repartition, "_split_streams", crashing)
    old_writer = Store(connect(url))
    await old_writer.identify()  # a process left running on the old layout
    client = connect(url)
    with pytest.raises(_Died):
        await repartition.upgrade(client, 64, lambda _: None)
    with pytest.raises(StoreUnavailable, match="being upgraded"):
        await identity.learn(client)  # a process that starts now is refused
    story = next(iter(records))
    with pytest.raises(StoreUnavailable):  # and one still running cannot write
        await old_writer.append(story, parse_command("entry.published", {"body": "x"}), actor="e:a")
    await old_writer.close()
    with pytest.raises(UsageError, match="finish it first"):
        await repartition.upgrade(client, 256, lambda _: None)
    monkeypatch.setattr(repartition, "_split_streams", split)
    await repartition.upgrade(client, 64, lambda _: None)
    await client.aclose()
    await _as_it_was(url, records, 64)


async def test_an_upgrade_is_refused_while_a_projector_runs_or_to_a_count_it_cannot_have(
    filled: tuple[str, dict[str, list[bytes]]],
) -> None:
    url, _ = filled
    client = connect(url)
    try:
        for wrong in (32, 8, 2048):
            with pytest.raises(UsageError):
                await repartition.upgrade(client, wrong, lambda _: None)
        store = Store(connect(url))
        consumers = Consumers(url, lambda: Projector(client, store), "running")
        await consumers.start()
        try:
            for _ in range(100):  # its reader connects once it runs
                if await repartition._reader_connected(client):
                    break
                await asyncio.sleep(0.02)
            with pytest.raises(UsageError, match="stop every Dateline process"):
                await repartition.upgrade(client, 64, lambda _: None)
        finally:
            await consumers.stop()
            await store.close()
        assert await client.get(keys.PARTITIONS_KEY) is None  # nothing changed
        assert await client.get(keys.REPARTITION_KEY) is None
    finally:
        await client.aclose()


def test_the_command_upgrades_a_store_and_says_what_it_moved(isolated_url: str) -> None:
    async def one_story() -> None:
        store = Store(connect(isolated_url))
        await store.append(
            "cli-moved", parse_open({"story": "cli-moved", "title": "T"}), actor="e:a"
        )
        await store.close()

    asyncio.run(one_story())
    done = run_module("partitions", "upgrade", "--to", "256", "--redis", isolated_url)
    assert done.returncode == 0, done.stderr
    assert "upgraded to 256 partitions: 1 stories" in done.stdout
    again = run_module("partitions", "upgrade", "--to", "256", "--redis", isolated_url)
    assert "already has 256 partitions" in again.stdout
    refused = run_module("partitions", "upgrade", "--to", "64", "--redis", isolated_url)
    assert refused.returncode == 2
    assert "can only grow" in refused.stderr


async def test_a_new_store_takes_the_partitions_asked_for(isolated_url: str) -> None:
    client = redis.Redis.from_url(isolated_url)
    try:
        await identity.learn(client, fresh=256)
        assert keys.partitions() == 256
        assert await client.get(keys.PARTITIONS_KEY) == b"256"
        keys.adopt(16)
        await identity.learn(client, fresh=1024)  # a store that exists keeps its count
        assert keys.partitions() == 256
    finally:
        await client.aclose()


# -- on a cluster --------------------------------------------------------------------------------


async def test_on_a_cluster_an_upgrade_to_256_spreads_the_stories_over_the_primaries(
    own_cluster: LocalCluster,
) -> None:
    url = own_cluster.url
    store = Store(connect(url))
    records = await _fill(store, 30, 1)
    await store.close()
    client = connect(url)
    moved = await repartition.upgrade(client, 256, lambda _: None)
    await client.aclose()
    assert moved.stories == 30
    await _as_it_was(url, records, 256)
    per = Counter(own_cluster.primary_of(keys.events(s)).port for s in records)
    assert len(per) == 3  # on 16 partitions the same 30 stories could sit on any


async def test_on_a_cluster_an_upgrade_is_refused_while_a_projector_reads_the_feeds(
    own_cluster: LocalCluster,
) -> None:
    """A cluster's feed readers are named too: the upgrade sees them on every primary."""
    url = own_cluster.url
    client = connect(url)
    store = Store(connect(url))
    consumers = Consumers(url, lambda: Projector(client, store), "running-on-cluster")
    try:
        await store.append("ran-1", parse_open({"story": "ran-1", "title": "T"}), actor="e:a")
        await consumers.start()
        for _ in range(100):  # its readers connect once they run
            if await repartition._reader_connected(client):
                break
            await asyncio.sleep(0.05)
        with pytest.raises(UsageError, match="stop every Dateline process"):
            await repartition.upgrade(client, 1024, lambda _: None)
    finally:
        await consumers.stop()
        await store.close()
        await client.aclose()
