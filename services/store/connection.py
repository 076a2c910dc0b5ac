"""Connections to the store, and what a lost one means to a caller.

Rules:
- every service reaches the store through ``connect`` (redis-py; the write path's script calls
  go through ``services.store.autopipeline`` on top of it);
- a connection failure anywhere is the contract's 503 ``store_unavailable``, never a 500: callers
  wrap their store calls in ``reachable()``;
- a URL may name one Redis-protocol server or any node of a Redis or Valkey Cluster: ``connect``
  asks the server (``INFO cluster``) and hands back a cluster client, which finds every other node
  and routes each command by its key's slot, when it is one (CONTRACT "Outgrowing one Redis");
- a store URL may hold a password (``redis://user:secret@host``, ``?password=secret``): what is
  said of it is ``redacted(url)``, never the URL itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import redis as redis_sync
import redis.asyncio as redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import SSLConnection
from redis.crc import key_slot
from redis.exceptions import ClusterDownError, ClusterError, SlotNotCoveredError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from events.errors import StoreUnavailable
from services.store import keys

Client = redis.Redis | RedisCluster
"""What every service holds: a client of one server, or of a cluster."""

_clustered: dict[str, bool] = {}


def is_cluster(url: str) -> bool:
    """Whether ``url`` names a node of a cluster (asked once per URL and process).

    A server that cannot be reached is taken for a single one: a cluster is always reachable
    through some node, and a service started before its single store keeps working when it comes.
    """
    found = _clustered.get(url)
    if found is None:
        try:
            with redis_sync.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2) as c:
                found = bool(int(c.info("cluster").get("cluster_enabled", 0)))
        except (redis_sync.RedisError, OSError, ValueError):
            return False
        _clustered[url] = found
    return found


CLUSTER_CONNECTIONS = keys.COUNTS[-1] + 100
"""A cluster client's connections per node at most: a changes tail holds one blocked read per
partition (a cluster refuses a read across slots), up to 1,024 of them on one node, and 100 for
the rest (redis-py's default, which a tail of 256 partitions exhausted: MaxConnectionsError)."""


def connect(url: str, **options: Any) -> Client:
    """A client for ``url`` (``redis://``, ``rediss://``, ``unix://``): of a cluster when the
    server it names is a cluster node, of that one server otherwise."""
    if is_cluster(url):
        return RedisCluster.from_url(url, **{"max_connections": CLUSTER_CONNECTIONS, **options})
    return redis.Redis.from_url(url, **options)


def primary_client(cluster: RedisCluster, key: str, **options: Any) -> redis.Redis:
    """A client of one connection to the primary that holds ``key``'s slot now, as the cluster
    client's slot map says (``await cluster.initialize()`` first): for what must run on one
    connection, as a read and the ``WAITAOF`` after it (``services.store.replicas``)."""
    node = cluster.nodes_manager.get_node_from_slot(key_slot(key.encode()))
    given = node.connection_kwargs
    kept = {k: given[k] for k in ("username", "password") if given.get(k) is not None}
    if issubclass(node.connection_class, SSLConnection):
        kept |= {k: v for k, v in given.items() if k.startswith("ssl_")} | {"ssl": True}
    return redis.Redis(
        host=node.host, port=int(node.port), single_connection_client=True, **kept, **options
    )


HIDDEN = "***"
"""What a password in a store URL is shown as."""


def redacted(url: str) -> str:
    """``url`` with its password, in the userinfo or the query, replaced by ``HIDDEN``."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    in_query = any(key == "password" for key, _ in query)
    if parts.password is None and not in_query:
        return url
    netloc = parts.netloc
    if parts.password is not None:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.partition(':')[0]}:{HIDDEN}@{host}"
    shown = [(key, HIDDEN if key == "password" else value) for key, value in query]
    rest = f"?{urlencode(shown, safe='*/')}" if shown else ""
    return f"{parts.scheme}://{netloc}{parts.path}{rest}"


@contextmanager
def reachable() -> Iterator[None]:
    """Turn a lost connection to the store into the contract's 503 ``store_unavailable``."""
    try:
        yield
    except (
        RedisConnectionError,
        RedisTimeoutError,
        OSError,
        ClusterDownError,  # a slot with no primary for now (CLUSTERDOWN, MASTERDOWN)
        ClusterError,  # redis-py's cluster client gave up redirecting or retrying
        SlotNotCoveredError,  # its slot map has no node for the key (mid-failover)
    ) as error:
        raise StoreUnavailable(
            f"the store is unreachable: {str(error) or type(error).__name__}"
        ) from None
    except RuntimeError as error:
        # redis-py under uvloop writes to a connection reset a moment before: uvloop raises
        # this instead of a connection error (seen in the cluster failover tests)
        if "handler is closed" not in str(error):
            raise
        raise StoreUnavailable(
            f"the store is unreachable: {str(error) or type(error).__name__}"
        ) from None
