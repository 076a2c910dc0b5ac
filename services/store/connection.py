"""Connections to the store, with hiredis packing the commands.

redis-py's asyncio connections build every command in Python, argument by argument; for the
projector's and the append's long script calls that was a third of the write path's CPU
(bench/README.md). ``hiredis.pack_command`` does the same in C. Everything else is redis-py.
"""

from __future__ import annotations

from typing import Any

import hiredis
import redis.asyncio as redis
from redis.asyncio.connection import Connection, UnixDomainSocketConnection


class _HiredisPacking:
    """``pack_command`` and ``pack_commands`` in C, with redis-py's splitting of the name."""

    def pack_command(self, *args: Any) -> list[bytes]:
        first = args[0]
        if isinstance(first, str) or b" " in first:
            args = (*first.split(), *args[1:])
        return [hiredis.pack_command(args)]

    def pack_commands(self, commands: Any) -> list[bytes]:
        return [b"".join(self.pack_command(*command)[0] for command in commands)]


class TcpConnection(_HiredisPacking, Connection):
    pass


class UnixConnection(_HiredisPacking, UnixDomainSocketConnection):
    pass


def connect(url: str, **options: Any) -> redis.Redis:
    """A client for ``url`` (``redis://``, ``unix://``; ``rediss://`` keeps redis-py's own)."""
    pool = redis.ConnectionPool.from_url(url, **options)
    if pool.connection_class is UnixDomainSocketConnection:
        pool.connection_class = UnixConnection
    elif pool.connection_class is Connection:
        pool.connection_class = TcpConnection
    return redis.Redis(connection_pool=pool)
