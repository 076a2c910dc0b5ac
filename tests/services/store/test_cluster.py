"""One URL, any deployment: ``connect`` finds out whether it names a cluster node.

These tests start a 3+3 Valkey Cluster of their own (``services.store.localcluster``), so they
run in the embedded pass; the cluster pass of CI runs the store-facing rooms on one.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
from redis.asyncio.cluster import RedisCluster

from events.decide import parse_command, parse_open
from events.errors import StoreUnavailable
from services.store import keys
from services.store.connection import connect
from services.store.localcluster import LocalCluster
from services.store.record import Keyed, Store


async def test_a_url_naming_any_node_of_a_cluster_gets_a_cluster_client(
    own_cluster: LocalCluster, redis_url: str
) -> None:
    """Any of the six nodes, primary or replica, will do; a single server stays one."""
    for node in own_cluster.nodes:
        client = connect(f"redis://127.0.0.1:{node.port}")
        assert isinstance(client, RedisCluster)
        await client.aclose()
    server = connect(redis_url)  # the server under test: a cluster only in the cluster pass
    on_cluster = bool(os.environ.get("DATELINE_TEST_CLUSTER"))
    assert isinstance(server, RedisCluster) == on_cluster
    await server.aclose()


async def test_a_store_on_a_cluster_appends_to_every_partition_across_the_primaries(
    own_cluster: LocalCluster,
) -> None:
    """A story in each of the 16 partitions is opened through ``Store`` and read back; their
    keys live on all three primaries."""
    store = Store.from_url(own_cluster.url)
    stories: dict[int, str] = {}
    n = 0
    while len(stories) < keys.partitions():
        stories.setdefault(keys.partition(f"c-{n}"), f"c-{n}")
        n += 1
    try:
        for story in stories.values():
            appended = await store.append(
                story, parse_open({"story": story, "title": "On a cluster"}), actor="editor:a"
            )
            assert appended.envelope is not None
            assert appended.envelope.version == 1
            assert [e.version for e in await store.read(story)] == [1]
        holders = {own_cluster.primary_of(keys.events(story)).port for story in stories.values()}
        assert len(holders) == 3
    finally:
        await store.close()


async def test_with_ack_replicas_an_append_waits_for_its_replica_and_says_when_none_has_it(
    own_cluster: LocalCluster,
) -> None:
    """``DATELINE_ACK_REPLICAS=1``: a healthy cluster answers at once; with the story's replica
    hung, the append is refused with ``acked_replicas`` 0 after the ack timeout, though the event
    is on the primary; once the replica is back, the retry with the same key gets that event."""
    store = Store(connect(own_cluster.url), ack_replicas=1, ack_timeout=0.5)
    story = "acked-1"
    keyed = Keyed.of("t", "key-1", "POST", f"/stories/{story}/events", {"body": "hung"})
    try:
        await store.append(story, parse_open({"story": story, "title": "Acked"}), actor="e:a")
        replica = own_cluster.replica_of(own_cluster.primary_of(keys.events(story)))
        assert replica is not None
        replica.pause()
        try:
            started = time.monotonic()
            with pytest.raises(StoreUnavailable) as refused:
                await store.append(
                    story,
                    parse_command("entry.published", {"body": "hung"}),
                    actor="e:a",
                    keyed=keyed,
                )
            waited = time.monotonic() - started
        finally:
            replica.resume()
        assert refused.value.details == {"acked_replicas": 0, "ack_replicas": 1}
        assert 0.5 <= waited < 1.5
        landed = await store.read(story)
        assert [e.version for e in landed] == [1, 2]  # the write landed on its primary
        again = await store.append(
            story, parse_command("entry.published", {"body": "hung"}), actor="e:a", keyed=keyed
        )
        assert again.replayed
        assert again.body == landed[1].to_json()
        assert [e.version for e in await store.read(story)] == [1, 2]
    finally:
        await store.close()


async def test_a_manual_failover_moves_the_appends_to_the_new_primary(
    tmp_path: Path,
) -> None:
    """After ``CLUSTER FAILOVER`` the old primary answers MOVED; the same ``Store`` follows it to
    the promoted replica and goes on from the next version."""
    own = LocalCluster(tmp_path / "cluster")
    own.start()
    store = Store(connect(own.url), ack_replicas=1)
    story = "moved-1"
    try:
        await store.append(story, parse_open({"story": story, "title": "Moved"}), actor="e:a")
        for n in range(5):
            await store.append(
                story, parse_command("entry.published", {"body": f"{n}"}), actor="e:a"
            )
        old = own.primary_of(keys.events(story))
        replica = own.replica_of(old)
        assert replica is not None
        await asyncio.to_thread(own.failover, replica)
        for n in range(5):
            await store.append(
                story, parse_command("entry.published", {"body": f"{n}"}), actor="e:a"
            )
        assert own.primary_of(keys.events(story)) is replica
        assert [e.version for e in await store.read(story)] == list(range(1, 12))
    finally:
        await store.close()
        own.stop()


async def test_a_shard_lost_whole_refuses_its_stories_and_the_others_go_on(
    tmp_path: Path,
) -> None:
    """A primary and its replica both gone: its stories are answered 503 (the store is
    unreachable for them), nothing is acknowledged, and every other story is still written
    (``cluster-require-full-coverage no``: the other shards keep serving)."""
    own = LocalCluster(tmp_path / "cluster")
    own.start()
    store = Store(connect(own.url), ack_timeout=2.0)
    stories = [f"shard-{n}" for n in range(40)]
    try:
        for story in stories:
            await store.append(story, parse_open({"story": story, "title": "T"}), actor="e:a")
        lost = own.primaries()[0]
        replica = own.replica_of(lost)
        assert replica is not None
        on_lost = [s for s in stories if own.primary_of(keys.events(s)) is lost]
        others = [s for s in stories if s not in on_lost]
        assert on_lost
        assert others
        replica.kill()
        lost.kill()
        for story in on_lost[:3]:
            with pytest.raises(StoreUnavailable, match=r"unreachable|cannot serve"):
                await store.append(
                    story, parse_command("entry.published", {"body": "x"}), actor="e:a"
                )
        await asyncio.sleep(3)  # past the node timeout: the dead shard is marked failed
        for story in others:
            appended = await store.append(
                story, parse_command("entry.published", {"body": "y"}), actor="e:a"
            )
            assert appended.envelope is not None
            assert appended.envelope.version == 2
    finally:
        await store.close()
        own.stop()
