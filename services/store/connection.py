"""Connections to the store, and what a lost one means to a caller.

Rules:
- every service reaches the store through ``connect`` (redis-py; the write path's script calls
  go through ``services.store.autopipeline`` on top of it);
- a connection failure anywhere is the contract's 503 ``store_unavailable``, never a 500: callers
  wrap their store calls in ``reachable()``;
- a store URL may hold a password (``redis://user:secret@host``, ``?password=secret``): what is
  said of it is ``redacted(url)``, never the URL itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import redis.asyncio as redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from events.errors import StoreUnavailable


def connect(url: str, **options: Any) -> redis.Redis:
    """A client for ``url`` (``redis://``, ``rediss://``, ``unix://``)."""
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
