"""One connection shared by many callers, each command written at once: auto-pipelining.

Rules:
- the write path (appends, the projector's state writes) sends every command the moment it is
  made, packed by hiredis, on one connection per ``Store`` and server (on a cluster, per
  primary); no call waits for another's answer before it is sent, so the server takes what
  arrived while it was busy in one turn (under ``appendfsync always``, one fsync) while Python
  prepares the next calls;
- a Redis-protocol server answers in order, so the answers resolve the callers in that order;
- commands a caller has ready together (a projector batch's stories) leave in one write per
  server (``execute_many``), so the server takes them in one turn;
- an error reply raises what redis-py raises for it (``server_error``), so a server still
  loading its data after a restart is "not now" (``store_unavailable``), as a lost connection is;
- a lost connection fails every call in flight with a connection error (``store_unavailable``
  to the caller) and is never sent again: the command may have run, and only the caller knows
  whether running it twice is safe (an append with an Idempotency-Key is); the next call opens a
  new one;
- on a cluster each command goes to the primary of its key's slot, from redis-py's slot map:
  ``MOVED`` (a failover, a migrated slot) updates the map and sends the command to the new
  owner; ``ASK`` (a slot being migrated) sends ``ASKING`` and the command to the target, once;
  ``TRYAGAIN`` (a multi-key command during a migration) waits ``TRY_AGAIN_S`` and sends it again:
  ``READONLY`` (the node is a replica now: a failover) refreshes the map and sends it again:
  each of these answers means the command did not run. ``CLUSTERDOWN`` and ``MASTERDOWN`` are
  "not now"; a lost connection or an unreachable node also refreshes the map (``REFRESH_S`` apart
  at most), so the calls after a failover find the promoted replica;
- a durable call (an append, when ``DATELINE_ACK_REPLICAS`` asks for replicas on a cluster) is
  followed on its own connection by ``WAIT N`` and ``WAITAOF 1 N``, as ``services.store.replicas``
  says why: they cover every command written before them, so a burst of appends shares one pair.
  Each waits ``SLICE_MS``; the pair is sent again until the replicas have the write or
  ``ack_timeout`` has passed, and then the call fails with ``StoreUnavailable`` and
  ``details.acked_replicas``. On one server nothing waits;
- ``rediss://`` URLs stay on redis-py (its TLS options), a cluster's too.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections import deque
from collections.abc import Sequence
from typing import Any

import hiredis
import redis.asyncio as redis
from redis._parsers.base import BaseParser
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection
from redis.crc import key_slot
from redis.exceptions import (
    AskError,
    ClusterDownError,
    MovedError,
    NoScriptError,
    ReadOnlyError,
    RedisClusterException,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError

from events.errors import StoreUnavailable
from services.store.replicas import SLICE_MS


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

    @property
    def usable(self) -> bool:
        """Not lost, and not closing either (a reset closes the transport a moment before
        ``connection_lost`` is called, and a write then would raise)."""
        if self.lost is None and self.transport is not None and self.transport.is_closing():
            self.lost = RedisConnectionError("connection to the store lost: closed")
        return self.lost is None

    def send(self, packed: bytes) -> asyncio.Future[Any]:
        """Write one packed command; the future of its answer."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if not self.usable:
            assert self.lost is not None
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
            if not self.usable:
                assert self.lost is not None
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


TRY_AGAIN_S = 0.05
"""How long a command answered ``TRYAGAIN`` (its slot is being migrated) waits to be resent."""
REDIRECTS = 5
"""How many MOVED, ASK and TRYAGAIN answers one command may get before it is "not now"."""
REFRESH_S = 0.25
"""The least time between two refreshes of a cluster's slot map after lost connections."""


def _key_of(args: tuple[Any, ...]) -> bytes:
    """The key a write-path command is routed by: a script's first key, else its first argument."""
    name = str(args[0]).upper()
    key = args[3] if name in ("EVALSHA", "EVAL") else args[1]
    return key if isinstance(key, bytes) else str(key).encode()


class _Link:
    """One server's connection, opened when first needed and again after it was lost; when it
    must, each burst of durable commands on it is followed by one WAITAOF."""

    def __init__(self, options: dict[str, Any], unix: bool = False) -> None:
        self.options = options
        self.unix = unix
        self._wire: _Wire | None = None
        self._opening = asyncio.Lock()
        self._cover: asyncio.Future[Any] | None = None
        """The WAITAOF to be written after the commands of this turn, not yet written."""

    async def wire(self) -> _Wire:
        wire = self._wire
        if wire is None or not wire.usable:
            wire = await self._open()
        return wire

    async def send(self, packed: bytes, count: int = 1) -> Any:
        """Send ``count`` packed commands (``ASKING`` and a command: 2); the last one's answer."""
        wire = await self.wire()
        if count == 1:
            return await wire.send(packed)
        return (await asyncio.gather(*wire.send_many(packed, count)))[-1]

    async def durable(self, packed: bytes, replicas: int, timeout: float, count: int = 1) -> Any:
        """Like ``send``, but answer once ``replicas`` replicas have the command in their
        append-only files, or raise ``StoreUnavailable`` after ``timeout`` seconds."""
        wire = await self.wire()
        answers = wire.send_many(packed, count)
        covered = self.covered(wire, replicas)
        result = (await asyncio.gather(*answers))[-1]  # an error reply is raised: no wait
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            try:
                _, acked = await asyncio.shield(covered)  # shared: one caller's cancel is its own
            except ResponseError as error:  # the primary became a replica after the write
                raise RedisConnectionError(
                    f"the event's primary stopped being one before its replicas had it ({error});"
                    " retry with the same Idempotency-Key"
                ) from None
            if int(acked) >= replicas:
                return result
            if asyncio.get_running_loop().time() >= deadline:
                raise StoreUnavailable(
                    f"the event was written on its primary but only {acked} of the "
                    f"{replicas} replicas asked for (DATELINE_ACK_REPLICAS) have it; it may "
                    "still be lost in a failover: retry with the same Idempotency-Key",
                    {"acked_replicas": int(acked), "ack_replicas": replicas},
                )
            covered = self.covered(wire, replicas)

    def covered(self, wire: _Wire, replicas: int) -> asyncio.Future[Any]:
        """The answer of a WAITAOF written after every command written so far on ``wire``:
        the one this turn will write, shared by every command of the turn."""
        cover = self._cover
        if cover is None:
            cover = self._cover = asyncio.get_running_loop().create_future()
            cover.add_done_callback(_retrieved)
            asyncio.get_running_loop().call_soon(self._write_cover, wire, replicas, cover)
        return cover

    def _write_cover(self, wire: _Wire, replicas: int, cover: asyncio.Future[Any]) -> None:
        self._cover = None
        wait: tuple[Any, ...] = ("WAIT", replicas, SLICE_MS)
        waitaof: tuple[Any, ...] = ("WAITAOF", 1, replicas, SLICE_MS)
        _, ask = wire.send_many(hiredis.pack_command(wait) + hiredis.pack_command(waitaof), 2)

        def done(answer: asyncio.Future[Any]) -> None:
            if cover.done():
                return
            if answer.exception() is not None:
                cover.set_exception(answer.exception())  # type: ignore[arg-type]
            else:
                cover.set_result(answer.result())

        ask.add_done_callback(done)

    async def _open(self) -> _Wire:
        async with self._opening:
            if self._wire is not None and self._wire.usable:
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

    def close(self) -> None:
        wire, self._wire = self._wire, None
        if wire is not None and wire.transport is not None:
            wire.transport.close()


class AutoPipeline:
    """Commands from any number of tasks over one lazily (re)opened connection per server."""

    def __init__(
        self, client: redis.Redis | RedisCluster, ack_replicas: int = 0, ack_timeout: float = 1.0
    ) -> None:
        self.client = client
        self.cluster = client if isinstance(client, RedisCluster) else None
        self.ack_replicas = ack_replicas if self.cluster is not None else 0
        """Replicas each durable call waits for (``DATELINE_ACK_REPLICAS``; on one server, 0)."""
        self.ack_timeout = ack_timeout
        self._links: dict[str, _Link] = {}
        self._refreshed = 0.0
        if isinstance(client, RedisCluster):
            connection_class = client.connection_kwargs.get("connection_class")
            self.tls = connection_class is not None and issubclass(connection_class, SSLConnection)
            self._single: _Link | None = None
        else:
            pool = client.connection_pool
            self.tls = issubclass(pool.connection_class, SSLConnection)
            self._single = _Link(
                dict(pool.connection_kwargs),
                issubclass(pool.connection_class, UnixDomainSocketConnection),
            )

    async def execute(self, *args: Any, durable: bool = False) -> Any:
        """Send one command; its answer (RESP2, bytes), or the server's error raised. A
        ``durable`` one is answered only once the replicas asked for have it."""
        if self.tls:
            return await self.client.execute_command(*args)  # type: ignore[no-untyped-call,unused-ignore]  # untyped in redis-py (not in its cluster client)
        if self._single is not None:
            return await self._single.send(hiredis.pack_command(args))
        return await self._routed(args, durable)

    async def execute_many(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Send several commands, in one write per server; each one's answer, or the exception
        it raised."""
        if self.tls:
            return list(
                await asyncio.gather(
                    *(self.client.execute_command(*c) for c in commands),  # type: ignore[no-untyped-call,unused-ignore]  # untyped in redis-py (not in its cluster client)
                    return_exceptions=True,
                )
            )
        if self._single is None:
            return await self._routed_many(commands)
        wire = await self._single.wire()
        packed = b"".join([hiredis.pack_command(c) for c in commands])
        futures = wire.send_many(packed, len(commands))
        return list(await asyncio.gather(*futures, return_exceptions=True))

    async def load(self, source: str) -> None:
        """``SCRIPT LOAD`` the script: on a cluster, on every primary (a replica promoted by a
        failover starts with no scripts, and answers NOSCRIPT until this runs again)."""
        if self.cluster is not None:
            await self.cluster.script_load(source)
        else:
            await self.execute("SCRIPT", "LOAD", source)

    # -- a cluster's routing --------------------------------------------------------------

    async def _primary(self, slot: int) -> _Link:
        """The connection to the slot's primary, from the cluster client's slot map."""
        assert self.cluster is not None
        try:
            await self.cluster.initialize()
            node = self.cluster.nodes_manager.get_node_from_slot(slot)
        except (RedisClusterException, RedisConnectionError, OSError) as error:
            raise RedisConnectionError(f"the cluster cannot be reached: {error}") from None
        return self._link(node)

    def _link(self, node: ClusterNode) -> _Link:
        link = self._links.get(node.name)
        if link is None:
            link = self._links[node.name] = _Link(dict(node.connection_kwargs))
        return link

    async def _routed(self, args: tuple[Any, ...], durable: bool) -> Any:
        assert self.cluster is not None
        slot = key_slot(_key_of(args))
        packed = hiredis.pack_command(args)
        asking: _Link | None = None
        for _ in range(REDIRECTS):
            link = asking or await self._primary(slot)
            sent = hiredis.pack_command(("ASKING",)) + packed if asking else packed
            asking = None
            try:
                count = 1 if sent is packed else 2  # ASKING's OK first, then the command's answer
                if durable and self.ack_replicas:
                    return await link.durable(sent, self.ack_replicas, self.ack_timeout, count)
                return await link.send(sent, count)
            except MovedError as moved:  # a failover or a migrated slot: not run, sent there
                await self.cluster.nodes_manager.move_slot(moved)
            except AskError as ask:  # the slot is being migrated: not run, asked of the target
                target = self.cluster.nodes_manager.get_node(ask.host, ask.port)
                asking = self._link(target) if target is not None else None
                if asking is None:
                    asking = _Link({**link.options, "host": ask.host, "port": ask.port})
            except TryAgainError:  # a migration splits the keys for a moment: not run
                await asyncio.sleep(TRY_AGAIN_S)
            except ReadOnlyError:  # a primary demoted under us (a failover): not run
                await self._refresh()
            except ClusterDownError as down:  # (MASTERDOWN too)
                raise RedisConnectionError(f"the cluster cannot serve this story: {down}") from None
            except RedisConnectionError:
                self._stale()
                raise
        raise RedisConnectionError("the cluster kept redirecting this story's write")

    async def _routed_many(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Each primary's commands in one write; a redirected one is then sent on its own."""
        groups: dict[_Link, list[int]] = {}
        for n, command in enumerate(commands):
            groups.setdefault(await self._primary(key_slot(_key_of(command))), []).append(n)
        answers: list[Any] = [None] * len(commands)

        async def send(link: _Link, ns: list[int]) -> None:
            try:
                wire = await link.wire()
            except RedisConnectionError as error:
                got: list[Any] = [error] * len(ns)
            else:
                packed = b"".join([hiredis.pack_command(commands[n]) for n in ns])
                futures = wire.send_many(packed, len(ns))
                got = list(await asyncio.gather(*futures, return_exceptions=True))
            for n, answer in zip(ns, got, strict=True):
                answers[n] = answer

        await asyncio.gather(*(send(link, ns) for link, ns in groups.items()))
        for n, answer in enumerate(answers):
            if isinstance(answer, ReadOnlyError):  # a demoted primary: not run, ask the map again
                await self._refresh()
            if isinstance(answer, AskError | TryAgainError | ReadOnlyError):  # not run: again
                try:
                    answers[n] = await self._routed(commands[n], False)
                except Exception as error:  # handed back as this command's answer
                    answers[n] = error
            elif isinstance(answer, ClusterDownError):
                answers[n] = RedisConnectionError(f"the cluster cannot serve this story: {answer}")
            elif isinstance(answer, RedisConnectionError):
                self._stale()
        return answers

    def _stale(self) -> None:
        """After a lost connection: refresh the slot map soon (a failover may be under way)."""
        assert self.cluster is not None
        now = asyncio.get_running_loop().time()
        if now - self._refreshed < REFRESH_S:
            return
        self._refreshed = now
        refresh = asyncio.get_running_loop().create_task(self._refresh())
        _refreshing.add(refresh)
        refresh.add_done_callback(_refreshing.discard)

    async def _refresh(self) -> None:
        assert self.cluster is not None
        with contextlib.suppress(Exception):  # the next lost connection asks again
            await self.cluster.nodes_manager.initialize()

    async def close(self) -> None:
        for link in [self._single, *self._links.values()]:
            if link is not None:
                link.close()
        self._links.clear()


def _retrieved(future: asyncio.Future[Any]) -> None:
    """Mark a shared answer's error as seen (a caller whose write failed never awaits it)."""
    if not future.cancelled():
        future.exception()


_refreshing: set[asyncio.Task[None]] = set()
"""Slot map refreshes under way (kept so none is collected before it ends)."""


class Script:
    """A Lua script run with EVALSHA on an auto-pipeline, loaded again when the server forgot it
    (a restart, SCRIPT FLUSH): the first call after that pays one SCRIPT LOAD."""

    def __init__(self, pipe: AutoPipeline, source: str, *, durable: bool = False) -> None:
        self.pipe = pipe
        self.source = source
        self.durable = durable
        """Whether each call is answered only once the replicas asked for have it (appends)."""
        self.sha = hashlib.sha1(
            source.encode(), usedforsecurity=False
        ).hexdigest()  # the server's script id

    async def __call__(self, keys: Sequence[str], args: Sequence[Any]) -> Any:
        command = ("EVALSHA", self.sha, len(keys), *keys, *args)
        try:
            return await self.pipe.execute(*command, durable=self.durable)
        except NoScriptError:
            await self.pipe.load(self.source)
            return await self.pipe.execute(*command, durable=self.durable)

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
