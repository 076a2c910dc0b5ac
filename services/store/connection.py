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
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from events.errors import StoreUnavailable

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


def connect(url: str, **options: Any) -> Client:
    """A client for ``url`` (``redis://``, ``rediss://``, ``unix://``): of a cluster when the
    server it names is a cluster node, of that one server otherwise."""
    if is_cluster(url):
        return RedisCluster.from_url(url, **options)
    return redis.Redis.from_url(url, **options)


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
    except (RedisConnectionError, RedisTimeoutError, OSError) as error:
        raise StoreUnavailable(f"the store is unreachable: {error}") from None
