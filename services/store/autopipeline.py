"""One connection shared by many callers, each command written at once: auto-pipelining.

Rules:
- the write path (appends, the projector's state writes) sends every command the moment it is
  made, packed by hiredis, on one connection per ``Store``; no call waits for another's answer
  before it is sent, so the server takes what arrived while it was busy in one turn (under
  ``appendfsync always``, one fsync) while Python prepares the next calls;
- a Redis-protocol server answers in order, so the answers resolve the callers in that order;
- commands a caller has ready together (a projector batch's stories) leave in one write
  (``execute_many``), so the server takes them in one turn;
- an error reply raises what redis-py raises for it (``server_error``), so a server still
  loading its data after a restart is "not now" (``store_unavailable``), as a lost connection is;
- a lost connection fails every call in flight with a connection error (``store_unavailable``
  to the caller); the next call opens a new one;
- everything else (reads, consumer groups, the gateway) stays on redis-py, and so do
  ``rediss://`` URLs, whose TLS options redis-py knows best, and clusters: redis-py's cluster
  client routes each command by its key's slot and follows MOVED, ASK and TRYAGAIN (one
  auto-pipelined connection per primary is not built yet: docs/architecture.md). It also sends
  a command again after a lost connection, which ``append.lua`` answers as the first run did.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from collections.abc import Sequence
from typing import Any

import hiredis
import redis.asyncio as redis
from redis._parsers.base import BaseParser
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError


def server_error(text: str) -> ResponseError:
    """An error reply as the exception redis-py raises for it: ``LOADING`` (a restarted server
    still reading its append-only file) is ``BusyLoadingError``, a connection error, so callers
    answer ``store_unavailable``; ``NOSCRIPT`` is ``NoScriptError``, and so on."""
    found: ResponseError = BaseParser.parse_error(text)  # type: ignore[no-untyped-call]  # redis-py leaves it untyped; its own table of error prefixes
    return found


class _Wire(asyncio.Protocol):
    """The connection: each command written as it comes, answers matched to callers in order."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.reader = hiredis.Reader(replyError=ResponseError)
        self.waiting: deque[asyncio.Future[Any]] = deque()
        self.lost: Exception | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def send(self, packed: bytes) -> asyncio.Future[Any]:
        """Write one packed command; the future of its answer."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.lost is not None:
            future.set_exception(self.lost)
            return future
        self.waiting.append(future)
        assert self.transport is not None
        self.transport.write(packed)
        return future

    def send_many(self, packed: bytes, count: int) -> list[asyncio.Future[Any]]:
        """Write ``count`` packed commands at once; a future for each answer, in order (the
        last one's is ``send``'s own, which writes them all)."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Any]] = [loop.create_future() for _ in range(count - 1)]
        for future in futures:
            if self.lost is not None:
                future.set_exception(self.lost)
            else:
                self.waiting.append(future)
        return [*futures, self.send(packed)]

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while (reply := self.reader.gets()) is not False:
            future = self.waiting.popleft()
            if future.done():  # its caller was cancelled: the answer is dropped
                continue
            if isinstance(reply, ResponseError):
                future.set_exception(server_error(str(reply)))
            else:
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = RedisConnectionError(f"connection to the store lost: {exc or 'closed'}")
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(self.lost)


class AutoPipeline:
    """Commands from any number of tasks over one lazily (re)opened connection."""

    def __init__(self, client: redis.Redis | RedisCluster) -> None:
        self.client = client
        if isinstance(client, RedisCluster):  # routed by slot, redirected and retried by redis-py
            self.options: dict[str, Any] = {}
            self.unix = False
            self.tls = True
        else:
            pool = client.connection_pool
            self.options = dict(pool.connection_kwargs)
            self.unix = issubclass(pool.connection_class, UnixDomainSocketConnection)
            self.tls = issubclass(pool.connection_class, SSLConnection)
        self._wire: _Wire | None = None
        self._opening = asyncio.Lock()

    async def execute(self, *args: Any) -> Any:
        """Send one command; its answer (RESP2, bytes), or the server's error raised."""
        if self.tls:
            return await self.client.execute_command(*args)  # type: ignore[no-untyped-call,unused-ignore]  # untyped in redis-py (not in its cluster client)
        wire = self._wire
        if wire is None or wire.lost is not None:
            wire = await self._open()
        return await wire.send(hiredis.pack_command(args))

    async def execute_many(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Send several commands in one write; each one's answer, or the exception it raised."""
        if self.tls:
            return list(
                await asyncio.gather(
                    *(self.client.execute_command(*c) for c in commands),  # type: ignore[no-untyped-call,unused-ignore]  # untyped in redis-py (not in its cluster client)
                    return_exceptions=True,
                )
            )
        wire = self._wire
        if wire is None or wire.lost is not None:
            wire = await self._open()
        packed = b"".join([hiredis.pack_command(c) for c in commands])
        futures = wire.send_many(packed, len(commands))
        return list(await asyncio.gather(*futures, return_exceptions=True))

    async def load(self, source: str) -> None:
        """``SCRIPT LOAD`` the script: on a cluster, on every primary (a replica promoted by a
        failover starts with no scripts, and answers NOSCRIPT until this runs again)."""
        if isinstance(self.client, RedisCluster):
            await self.client.script_load(source)
        else:
            await self.execute("SCRIPT", "LOAD", source)

    async def _open(self) -> _Wire:
        async with self._opening:
            if self._wire is not None and self._wire.lost is None:
                return self._wire
            loop = asyncio.get_running_loop()
            timeout = self.options.get("socket_connect_timeout") or 10.0
            try:
                async with asyncio.timeout(timeout):
                    if self.unix:
                        _, wire = await loop.create_unix_connection(_Wire, self.options["path"])
                    else:
                        _, wire = await loop.create_connection(
                            _Wire, self.options.get("host", "localhost"), self.options["port"]
                        )
            except (OSError, TimeoutError) as error:
                raise RedisConnectionError(f"cannot reach the store: {error}") from None
            hello: list[asyncio.Future[Any]] = []
            password = self.options.get("password")
            if password:
                username = self.options.get("username")
                auth: tuple[Any, ...] = (
                    ("AUTH", username, password) if username else ("AUTH", password)
                )
                hello.append(wire.send(hiredis.pack_command(auth)))
            if self.options.get("db"):
                select: tuple[Any, ...] = ("SELECT", self.options["db"])
                hello.append(wire.send(hiredis.pack_command(select)))
            try:
                await asyncio.gather(*hello)
            except BaseException:
                if wire.transport is not None:
                    wire.transport.close()
                raise
            self._wire = wire
            return wire

    async def close(self) -> None:
        wire, self._wire = self._wire, None
        if wire is not None and wire.transport is not None:
            wire.transport.close()


class Script:
    """A Lua script run with EVALSHA on an auto-pipeline, loaded again when the server forgot it
    (a restart, SCRIPT FLUSH): the first call after that pays one SCRIPT LOAD."""

    def __init__(self, pipe: AutoPipeline, source: str) -> None:
        self.pipe = pipe
        self.source = source
        self.sha = hashlib.sha1(
            source.encode(), usedforsecurity=False
        ).hexdigest()  # the server's script id

    async def __call__(self, keys: Sequence[str], args: Sequence[Any]) -> Any:
        command = ("EVALSHA", self.sha, len(keys), *keys, *args)
        try:
            return await self.pipe.execute(*command)
        except NoScriptError:
            await self.pipe.load(self.source)
            return await self.pipe.execute(*command)

    async def many(self, calls: Sequence[tuple[Sequence[str], Sequence[Any]]]) -> list[Any]:
        """Run the script once per ``(keys, args)``, all sent in one write; the answers in
        order. The server's error of any call is raised (after all have answered)."""
        commands = [("EVALSHA", self.sha, len(keys), *keys, *args) for keys, args in calls]
        answers = await self.pipe.execute_many(commands)
        if any(isinstance(a, NoScriptError) for a in answers):
            await self.pipe.load(self.source)
            again = [n for n, a in enumerate(answers) if isinstance(a, NoScriptError)]
            for n, answer in zip(
                again, await self.pipe.execute_many([commands[n] for n in again]), strict=True
            ):
                answers[n] = answer
        for answer in answers:
            if isinstance(answer, BaseException):
                raise answer
        return answers
