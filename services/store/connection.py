"""Connections to the store, and what a lost one means to a caller.

Rules:
- every service reaches the store through ``connect`` (redis-py; the write path's script calls
  go through ``services.store.autopipeline`` on top of it);
- a connection failure anywhere is the contract's 503 ``store_unavailable``, never a 500: callers
  wrap their store calls in ``reachable()``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis.asyncio as redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from events.errors import StoreUnavailable


def connect(url: str, **options: Any) -> redis.Redis:
    """A client for ``url`` (``redis://``, ``rediss://``, ``unix://``)."""
    return redis.Redis.from_url(url, **options)


@contextmanager
def reachable() -> Iterator[None]:
    """Turn a lost connection to the store into the contract's 503 ``store_unavailable``."""
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError, OSError) as error:
        raise StoreUnavailable(f"the store is unreachable: {error}") from None
