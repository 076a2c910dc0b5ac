"""The projector on a cluster of its own: one reader per feed on its primary's connection, claims
there, and, with ``DATELINE_ACK_REPLICAS``, nothing folded that a replica does not have yet.

These start a 3+3 local cluster (``services.store.localcluster``), so they run in every pass
(the cluster pass's shared cluster has one database, which the other consumer tests cannot
share)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest

from events.decide import parse_command, parse_open
from services.projector.consumers import Consumers
from services.projector.feeds import ensure_groups
from services.projector.fold import Projector
from services.store import keys
from services.store.connection import Client, connect
from services.store.keys import GROUP
from services.store.localcluster import LocalCluster
from services.store.readmodel import ReadModel
from services.store.record import Store
from tests.services.projector.conftest import assert_state_is_a_fresh_fold, wait_projected


@pytest.fixture
async def world(own_cluster: LocalCluster) -> AsyncIterator[tuple[str, Client, Store]]:
    client = connect(own_cluster.url)
    store = Store(client)
    await ensure_groups(client)
    yield own_cluster.url, client, store
    await store.close()


def _one_per_partition(prefix: str) -> list[str]:
    found: dict[int, str] = {}
    n = 0
    while len(found) < keys.partitions():
        found.setdefault(keys.partition(f"{prefix}-{n}"), f"{prefix}-{n}")
        n += 1
    return list(found.values())


async def _fill(store: Store, stories: list[str], entries: int) -> dict[str, int]:
    heads = {}
    for story in stories:
        await store.append(story, parse_open({"story": story, "title": "T"}), actor="e:a")
        for i in range(entries):
            data = {"body": f"<p>{i}</p>", "entry_id": f"e{i}"}
            await store.append(story, parse_command("entry.published", data), actor="e:a")
        heads[story] = (await store.head(story))[0]
    return heads


async def test_a_projector_on_a_cluster_folds_every_partition_and_claims_what_a_dead_one_read(
    world: tuple[str, Client, Store],
) -> None:
    """A consumer that read every feed and died leaves its events pending; a live projector with
    ``ack_replicas=1`` claims them on each feed's primary, waits for the replicas, and folds."""
    url, client, store = world
    heads = await _fill(store, _one_per_partition("claimed"), 3)
    taken = 0
    for p in range(keys.partitions()):  # the dead consumer's reads, one feed at a time
        reply = await client.xreadgroup(GROUP, "dead", {keys.feed(p): ">"}, count=1000)
        taken += sum(len(entries) for _, entries in cast("list[tuple[bytes, list[Any]]]", reply))
    assert taken >= sum(heads.values())
    live = Projector(client, store)
    consumers = Consumers(url, lambda: live, "live", claim_idle_ms=300, ack_replicas=1)
    await consumers.start()
    try:
        await wait_projected(client, heads)  # type: ignore[arg-type]  # a cluster client reads alike
    finally:
        await consumers.stop()
    for story in heads:
        await assert_state_is_a_fresh_fold(client, store, story)  # type: ignore[arg-type]


async def test_with_ack_replicas_the_projector_folds_nothing_a_replica_lacks(
    world: tuple[str, Client, Store], own_cluster: LocalCluster
) -> None:
    """With the story's replica hung, its new event is on the primary but no reader is shown
    it: the projector leaves it unfolded until the replica has it, then folds it."""
    url, client, store = world
    story = "held-1"
    heads = await _fill(store, [story], 1)
    projector = Projector(client, store)
    consumers = Consumers(url, lambda: projector, "held", ack_replicas=1, ack_timeout=0.2)
    await consumers.start()
    try:
        await wait_projected(client, heads)  # type: ignore[arg-type]
        replica = own_cluster.replica_of(own_cluster.primary_of(keys.events(story)))
        assert replica is not None
        replica.pause()
        try:
            await store.append(story, parse_command("entry.published", {"body": "x"}), actor="e:a")
            await asyncio.sleep(1.2)
            shown = await ReadModel(client).version(story)
        finally:
            replica.resume()
        assert shown == heads[story]  # not folded while only the primary had it
        began = time.monotonic()
        await wait_projected(client, {story: heads[story] + 1})  # type: ignore[arg-type]
        assert time.monotonic() - began < 5
    finally:
        await consumers.stop()
