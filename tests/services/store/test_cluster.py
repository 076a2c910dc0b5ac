"""One URL, any deployment: ``connect`` finds out whether it names a cluster node.

These tests start a 3+3 Valkey Cluster of their own (``services.store.localcluster``), so they
run in the embedded pass; the cluster pass of CI runs the store-facing rooms on one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from redis.asyncio.cluster import RedisCluster

from events.decide import parse_open
from services.store import keys
from services.store.connection import connect
from services.store.localcluster import LocalCluster
from services.store.record import Store


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    own = LocalCluster(tmp_path_factory.mktemp("own-cluster"))
    own.start()
    yield own
    own.stop()


async def test_a_url_naming_any_node_of_a_cluster_gets_a_cluster_client(
    cluster: LocalCluster, redis_url: str
) -> None:
    """Any of the six nodes, primary or replica, will do; a single server stays one."""
    for node in cluster.nodes:
        client = connect(f"redis://127.0.0.1:{node.port}")
        assert isinstance(client, RedisCluster)
        await client.aclose()
    server = connect(redis_url)  # the server under test: a cluster only in the cluster pass
    on_cluster = bool(os.environ.get("DATELINE_TEST_CLUSTER"))
    assert isinstance(server, RedisCluster) == on_cluster
    await server.aclose()


async def test_a_store_on_a_cluster_appends_to_every_partition_across_the_primaries(
    cluster: LocalCluster,
) -> None:
    """A story in each of the 16 partitions is opened through ``Store`` and read back; their
    keys live on all three primaries."""
    store = Store.from_url(cluster.url)
    stories: dict[int, str] = {}
    n = 0
    while len(stories) < keys.PARTITIONS:
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
        holders = {cluster.primary_of(keys.events(story)).port for story in stories.values()}
        assert len(holders) == 3
    finally:
        await store.close()
