"""The websocket gateway: every change, in order, to every browser watching a story.

Protocol (CONTRACT.md "Websocket gateway"): JSON text frames; ops ``subscribe`` (optionally with
``since``), ``unsubscribe``, ``ping``. Rules:
- the projector writes each change atomically with the state it describes, onto the story's own
  changes stream (the last ``CHANGES_KEPT`` versions, for ``since``) and its partition's stream,
  which every gateway tails (XREAD BLOCK); any number of gateways deliver the same versions;
- a subscriber is registered *before* its snapshot (or its ``since`` replay) is read, and buffers
  live changes meanwhile; the buffer is then drained past the version it was given, filling any
  hole from the story's changes stream, so versions per story arrive strictly increasing by one,
  with no gap and no duplicate, even when a subscribe races a burst of appends;
- each change is serialized once, by the projector; the gateway writes those same bytes to every
  live subscriber, never re-encoding per client;
- a client that owes more than ``MAX_BUFFER`` beyond its transport is closed with 1013 and dropped
  at once, so it never delays anyone else; it resumes with ``since``;
- limits: frames in at most ``MAX_FRAME`` bytes (1009 beyond), ``MAX_SUBSCRIPTIONS`` stories a
  connection (``too_many_subscriptions``), an Origin allow-list, compression off, heartbeat pings.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis.asyncio as redis
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode, Frame, Opcode
from websockets.protocol import State

from events.errors import DatelineError
from events.ids import is_id
from projections.story import DEFAULT_LIMIT
from services.store import keys
from services.store.readmodel import ReadModel

log = logging.getLogger("dateline.gateway")

MAX_FRAME = 64 * 1024
"""Largest frame a client may send (CONTRACT: 64 KiB; a larger one closes with 1009)."""
MAX_SUBSCRIPTIONS = 100
"""Stories one connection may follow at once (CONTRACT: 100)."""
MAX_BUFFER = 1024 * 1024
"""Bytes of frames a client may owe beyond its transport before it is closed with 1013."""
WRITE_LIMIT = 64 * 1024
"""A transport buffer past this pushes back (websockets ``write_limit``): frames then wait in the
client's own backlog, which can be dropped, instead of the transport's, which cannot."""
PING_INTERVAL = 20.0
PING_TIMEOUT = 20.0
TAIL_BLOCK_MS = 1_000
TAIL_COUNT = 1_000
REPLAY_LIMIT = 2_000


def changes_of(entry_id: bytes, fields: Mapping[bytes, bytes]) -> list[tuple[int, bytes]]:
    """The changes one entry of a changes stream holds, as (version, change JSON), in order.

    ``project.lua`` writes the changes of a run of versions as one entry: each version a field
    (its value the change), beside ``s`` (the story) on a partition's stream; a story's entry
    has the id of the run's last version. An entry of the first layout (one change: ``c``, with
    ``v`` or the id's version) reads as a run of one.
    """
    legacy = fields.get(b"c")
    if legacy is not None:
        version = fields.get(b"v") or entry_id.split(b"-", 1)[0]
        return [(int(version), legacy)]
    return [(int(name), change) for name, change in fields.items() if name != b"s"]


def wire(message: bytes) -> bytes:
    """A JSON text message as the bytes of one unmasked, uncompressed websocket frame."""
    return Frame(Opcode.TEXT, message).serialize(mask=False)


def error_frame(code: str, message: str, story: str | None = None) -> bytes:
    body: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if story is not None:
        body["story"] = story
    return orjson.dumps(body)


@dataclass(eq=False)
class Joiner:
    """A subscriber catching up: live changes wait in ``buffer`` until it reaches the tail."""

    client: Client
    version: int = 0
    buffer: list[tuple[int, bytes]] = field(default_factory=list)
    """Live changes (version, framed bytes) that arrived while it caught up."""
    ready: bool = False
    """Its snapshot or replay is sent; only the tail's own progress remains."""


@dataclass(eq=False)
class Channel:
    """One story's subscribers on this gateway, and the last version its tail delivered."""

    version: int = 0
    live: set[Client] = field(default_factory=set)
    joining: dict[Client, Joiner] = field(default_factory=dict)


@dataclass(eq=False)
class Client:
    """One websocket connection, the stories it follows, and what it still owes to be sent.

    Frames go straight to the transport, as ``websockets.broadcast`` does, while the transport
    keeps up; once it pushes back (its buffer is past ``WRITE_LIMIT``), frames wait in a backlog
    of our own that a flusher drains. A backlog past ``MAX_BUFFER`` is dropped and the client is
    closed with 1013: the close frame then sits behind at most ``WRITE_LIMIT`` bytes, so even a
    phone that wakes up late learns why it was cut off.
    """

    connection: ServerConnection
    stories: set[str] = field(default_factory=set)
    backlog: deque[bytes] = field(default_factory=deque)
    owed: int = 0
    flusher: asyncio.Task[None] | None = None
    closed: bool = False

    def send(self, message: bytes) -> bool:
        """Send one JSON text message to this client alone (snapshots, replays, errors)."""
        return self.write(wire(message))

    def write(self, frame: bytes) -> bool:
        """Queue one whole websocket frame, already framed, without waiting; False once gone.

        Server frames are not masked and compression is off, so the frame of a change is the
        same bytes for every client: ``Gateway.deliver`` frames it once and every live client
        gets those bytes. Whole frames written straight to the transport interleave safely with
        the control frames websockets writes itself (it flushes each as it makes it).
        """
        connection = self.connection
        if self.closed or connection.protocol.state is not State.OPEN:
            return False
        if not self.backlog and not connection.paused:
            try:
                connection.transport.write(frame)
            except Exception:  # a broken transport: the handler will see it close
                return False
            return True
        if self.owed + len(frame) > MAX_BUFFER:
            self.too_slow()
            return False
        self.backlog.append(frame)
        self.owed += len(frame)
        if self.flusher is None:
            self.flusher = asyncio.get_running_loop().create_task(self._flush())
        return True

    async def _flush(self) -> None:
        connection = self.connection
        try:
            while self.backlog:
                await connection.drain()
                while self.backlog and not connection.paused:
                    frame = self.backlog.popleft()
                    self.owed -= len(frame)
                    connection.transport.write(frame)
        except Exception:  # the connection went away: nothing left to flush
            self.backlog.clear()
            self.owed = 0
        finally:
            self.flusher = None

    def too_slow(self) -> None:
        """Drop what is owed and close with 1013; the client resumes with ``since``."""
        self.closed = True
        self.backlog.clear()
        self.owed = 0
        if self.flusher is not None:
            self.flusher.cancel()
        asyncio.get_running_loop().create_task(
            self.connection.close(CloseCode.TRY_AGAIN_LATER, "too slow: resume with since")
        )


class Gateway:
    """Tails the change streams and serves subscribers."""

    def __init__(self, client: redis.Redis, origins: Iterable[str] | None = None) -> None:
        self.client = client
        self.reads = ReadModel(client)
        self.origins = list(origins) if origins is not None else None
        self.channels: dict[str, Channel] = {}
        self.clients: set[Client] = set()
        self._tail: asyncio.Task[None] | None = None
        self._server: Server | None = None
        self.delivered = 0

    # -- the tail: one reader of every partition's changes -------------------------------------

    async def tail(self) -> None:
        """Follow every partition's changes stream from now on, forever."""
        streams = {keys.partition_changes(p): "$" for p in range(keys.PARTITIONS)}
        while True:
            try:
                replies = await self.client.xread(streams, count=TAIL_COUNT, block=TAIL_BLOCK_MS)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("change tail failed: %s", error)
                await asyncio.sleep(0.5)
                continue
            for stream, entries in replies:
                name = stream.decode() if isinstance(stream, bytes) else stream
                for entry_id, fields in entries:
                    streams[name] = entry_id
                    story = fields[b"s"].decode()
                    for version, change in changes_of(entry_id, fields):
                        self.deliver(story, version, change)

    def deliver(self, story: str, version: int, frame: bytes) -> None:
        """One change from the tail: to every live subscriber, and into every joiner's buffer."""
        channel = self.channels.get(story)
        if channel is None:
            return
        if version <= channel.version:
            return  # already delivered (a tail restart re-reading): never twice
        channel.version = version
        framed = wire(frame)  # framed once, the same bytes for every client
        for client in list(channel.live):
            if client.write(framed):
                self.delivered += 1
            else:
                self.drop(client)
        for joiner in list(channel.joining.values()):
            joiner.buffer.append((version, framed))
            if joiner.ready:
                self._settle(story, channel, joiner)

    def _settle(self, story: str, channel: Channel, joiner: Joiner) -> None:
        """A ready joiner whose version the tail has reached becomes live (no await: no race)."""
        for version, frame in joiner.buffer:
            if version == joiner.version + 1:
                if not joiner.client.write(frame):
                    self.drop(joiner.client)
                    return
                joiner.version = version
        joiner.buffer.clear()
        if joiner.version == channel.version:
            del channel.joining[joiner.client]
            channel.live.add(joiner.client)

    # -- subscribing ---------------------------------------------------------------------------

    async def subscribe(self, client: Client, story: str, since: int | None) -> None:
        """Snapshot (or replay from ``since``), then live: no gap, no duplicate."""
        if story in client.stories:
            self.unsubscribe(client, story)
        if len(client.stories) >= MAX_SUBSCRIPTIONS:
            client.send(
                error_frame(
                    "too_many_subscriptions",
                    f"at most {MAX_SUBSCRIPTIONS} stories a connection",
                    story,
                )
            )
            return
        try:
            current = await self.reads.version(story) if is_id(story) else 0
        except DatelineError as error:  # the store is away: say so, and keep the connection
            client.send(error_frame(error.code, error.message, story))
            return
        if current == 0:
            client.send(error_frame("unknown_story", f"story {story!r} does not exist", story))
            return
        channel = self.channels.setdefault(story, Channel())
        joiner = Joiner(client)
        channel.joining[client] = joiner
        client.stories.add(story)
        try:
            replayed = await self._replay(story, since) if since is not None else None
            if replayed is None:
                state = await self.reads.story(story, DEFAULT_LIMIT, None)
                version = int(state["version"])  # type: ignore[arg-type]
                snapshot = {"type": "snapshot", "story": story, "version": version, "state": state}
                if since is not None:
                    snapshot["reset"] = True
                client.send(orjson.dumps(snapshot))
                joiner.version = version
            else:
                for _version, frame in replayed:
                    client.send(frame)
                joiner.version = replayed[-1][0] if replayed else since  # type: ignore[assignment]
            await self._catch_up(story, channel, joiner)
        except (DatelineError, redis.RedisError) as error:
            self.unsubscribe(client, story)
            code = error.code if isinstance(error, DatelineError) else "store_unavailable"
            client.send(error_frame(code, str(error), story))

    async def _replay(self, story: str, since: int) -> list[tuple[int, bytes]] | None:
        """Changes ``since+1 ..`` from the story's changes stream, or None if it no longer has
        them all (or ``since`` is ahead of the story): then a snapshot with ``reset`` is due."""
        changes = await self._changes(story, since, REPLAY_LIMIT)
        current = await self.reads.version(story)
        if since > current or since < 0:
            return None
        if since == current:
            return []
        if not changes or changes[0][0] != since + 1:
            return None
        if changes[-1][0] < current and len(changes) >= REPLAY_LIMIT:
            return None  # too far behind to replay frame by frame: a fresh snapshot is better
        return changes

    async def _changes(self, story: str, after: int, count: int) -> list[tuple[int, bytes]]:
        """The story's kept changes past version ``after``: at least ``count``, if it has them.

        An entry's id is the last version it holds, so the entries from ``after + 1`` on hold
        every kept change past ``after`` (the first perhaps some before it, dropped here), and
        ``count`` entries hold at least ``count`` changes.
        """
        rows = await self.client.xrange(keys.changes(story), f"{after + 1}-0", "+", count=count)
        return [
            (v, c)
            for entry_id, fields in rows
            for v, c in changes_of(entry_id, fields)
            if v > after
        ]

    async def _catch_up(self, story: str, channel: Channel, joiner: Joiner) -> None:
        """Drain the joiner's buffer past its version, filling holes from the changes stream."""
        while channel.joining.get(joiner.client) is joiner:
            behind = max(channel.version, max((v for v, _ in joiner.buffer), default=0))
            if behind > joiner.version + 1 and not any(
                v == joiner.version + 1 for v, _ in joiner.buffer
            ):
                rows = await self._changes(story, joiner.version, behind - joiner.version)
                advanced = False
                for version, change in rows:
                    if version == joiner.version + 1 and version <= behind:
                        if not joiner.client.send(change):
                            self.drop(joiner.client)
                            return
                        joiner.version, advanced = version, True
                if not advanced:
                    break
                continue
            joiner.ready = True
            if channel.version < joiner.version:
                return  # the tail is behind the snapshot: it settles the joiner when it gets there
            self._settle(story, channel, joiner)
            return

    def unsubscribe(self, client: Client, story: str) -> None:
        client.stories.discard(story)
        channel = self.channels.get(story)
        if channel is None:
            return
        channel.live.discard(client)
        channel.joining.pop(client, None)
        if not channel.live and not channel.joining:
            del self.channels[story]

    def drop(self, client: Client) -> None:
        """Forget a client everywhere at once (closed, or too slow)."""
        for story in list(client.stories):
            self.unsubscribe(client, story)
        self.clients.discard(client)

    # -- connections ---------------------------------------------------------------------------

    async def handle(self, connection: ServerConnection) -> None:
        client = Client(connection)
        self.clients.add(client)
        try:
            async for message in connection:
                await self.on_message(client, message)
        except ConnectionClosed:
            pass
        finally:
            self.drop(client)

    async def on_message(self, client: Client, message: str | bytes) -> None:
        try:
            request = orjson.loads(message)
        except orjson.JSONDecodeError:
            client.send(error_frame("bad_request", "frames are JSON objects"))
            return
        if not isinstance(request, dict):
            client.send(error_frame("bad_request", "frames are JSON objects"))
            return
        op = request.get("op")
        story = request.get("story")
        if op == "ping":
            client.send(b'{"type":"pong"}')
        elif op in ("subscribe", "unsubscribe"):
            if not isinstance(story, str):
                client.send(error_frame("bad_request", f"{op} needs a story id"))
                return
            if op == "unsubscribe":
                self.unsubscribe(client, story)
                return
            since = request.get("since")
            if since is not None and (type(since) is not int or since < 0):
                client.send(error_frame("bad_request", "since must be a version number", story))
                return
            await self.subscribe(client, story, since)
        elif op is None:
            client.send(error_frame("bad_request", "a frame needs an op"))
        else:
            client.send(error_frame("bad_request", f"unknown op {op!r}"))

    async def start(self, host: str, port: int, sock: socket.socket | None = None) -> Server:
        """Listen, and start tailing the changes."""
        self._tail = asyncio.get_running_loop().create_task(self.tail())
        origins: list[Any] | None = None
        if self.origins is not None:
            origins = [*self.origins, None]  # None: clients that send no Origin (tools, tail)
        self._server = await serve(
            self.handle,
            None if sock is not None else host,
            None if sock is not None else port,
            sock=sock,
            origins=origins,
            max_size=MAX_FRAME,
            compression=None,
            ping_interval=PING_INTERVAL,
            ping_timeout=PING_TIMEOUT,
            write_limit=WRITE_LIMIT,
            close_timeout=10,
        )
        return self._server

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self._tail is not None:
            self._tail.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tail
