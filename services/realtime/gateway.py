"""The websocket gateway: the asyncio shell that performs what each subscription decides.

The ordering rules live in ``services.realtime.subscription`` (no I/O); this module only moves
bytes and reads the store, as websockets' ``asyncio/connection.py`` does for its ``Protocol``:
- the tail follows every partition's changes stream (XREAD BLOCK) from the last entry each held
  when it started, so no change projected after the gateway starts is skipped, and hands each
  change to its story's channel (CONTRACT.md "Websocket gateway");
- when a tail read fails (the store is away), every subscriber is told once (a
  ``store_unavailable`` error frame with ``"subscribed": true``) and keeps its subscription; the
  tail goes on from the entries it last held, so once the store is back (a ``resumed`` frame)
  changes arrive in order with no gap, and no crowd of readers reconnects at once;
- a channel's live subscribers share one ``Subscription`` (the group): a change that follows the
  group's version is framed once and written to every live client, a comparison and a write each;
  anything else (a hole the tail left, a duplicate) goes through the group's rules, and a hole is
  filled once for all of them;
- a joiner has a ``Subscription`` of its own, registered before its snapshot or ``since`` replay is
  read; it joins the live set when its core says so (``Subscription.joins``);
- a read that fails is handed to the core (``Subscription.failed``), which refuses, asks again
  (the shell pauses ``RETRIES`` between attempts) or closes with 1013;
- reads (snapshots, replays, hole fills) run at most ``READS_AT_ONCE`` at a time, so a crowd
  joining at once waits for the store instead of exhausting the connection pool (issue 9);
- what a client asked for by reading history (its snapshot, its ``since`` replay, the holes it
  fills while joining) is owed on credit, never counted as slowness, and paced by its transport:
  a joiner's history is read ``REPLAY_CHUNK`` stream entries at a time, the next only once the
  client's transport has taken the last (``services.realtime.backlog``);
- a client that owes more than ``MAX_BUFFER`` of live frames beyond its transport, or takes
  nothing from it for ``STALL_TIMEOUT`` while it owes anything, is closed with 1013, so it never
  delays anyone else and never holds memory for long; it resumes with ``since``;
- every close the gateway starts (1013, 1008, 1001 at shutdown) is bounded: a client that has
  not taken its close frame and answered within ``CLOSE_TIMEOUT`` (``STOP_TIMEOUT`` when the
  gateway stops) is dropped, since websockets' own close first waits for the transport to
  drain, with no bound;
- limits: frames in at most ``MAX_FRAME`` bytes (1009 beyond), ``MAX_SUBSCRIPTIONS`` stories a
  connection (``too_many_subscriptions``), ops a second per connection (``rate_limited`` past its
  allowance, 1008 for a flood: ``services.realtime.allowance``), an Origin allow-list,
  compression off, heartbeat pings.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as redis
from pydantic import JsonValue
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from events.errors import (
    BadRequest,
    DatelineError,
    RateLimited,
    StoreUnavailable,
    TooManySubscriptions,
    UnknownStory,
)
from events.ids import is_id
from projections.story import DEFAULT_LIMIT
from services import faults
from services.realtime.allowance import FLOOD, Ops, Verdict
from services.realtime.backlog import STALL_TIMEOUT, Backlog
from services.realtime.frames import (
    PONG,
    away_frame,
    changes_of,
    error_frame,
    parse_request,
    resumed_frame,
    shown,
    snapshot_frame,
    wire,
)
from services.realtime.subscription import (
    MAX_REPLAY,
    TOO_SLOW,
    TRY_AGAIN_LATER,
    Actions,
    Close,
    FetchChanges,
    Read,
    ReadSnapshot,
    Refuse,
    Replay,
    Send,
    Subscription,
)
from services.store import changefeed, keys
from services.store.connection import Client as StoreClient
from services.store.readmodel import ReadModel

log = logging.getLogger("dateline.gateway")

MAX_FRAME = 64 * 1024
"""Largest frame a client may send (CONTRACT: 64 KiB; a larger one closes with 1009)."""
MAX_SUBSCRIPTIONS = 100
"""Stories one connection may follow at once (CONTRACT: 100)."""
WRITE_LIMIT = 64 * 1024
"""A transport buffer past this pushes back (websockets ``write_limit``): frames then wait in the
client's own backlog, which can be dropped, instead of the transport's, which cannot."""
PING_INTERVAL = 20.0
PING_TIMEOUT = 20.0
CLOSE_TIMEOUT = 10.0
"""Seconds a client we close has to take its close frame and answer it; then its TCP connection
is dropped. websockets' own close waits for the transport to drain first, with no bound, so a
client that reads nothing would otherwise hold its connection forever (a keep-alive ping written
behind its frames waits the same way, so it never notices)."""
STOP_TIMEOUT = 5.0
"""Seconds a stopping gateway gives each client to take its 1001 (half the time ``serve`` gives a
worker to stop): a client that reads nothing never holds up a shutdown."""
READS_AT_ONCE = 32
"""Store reads in flight at once: well below redis-py's pool (100 connections, and it refuses
rather than waits past them), leaving room for the tail's blocking read."""
REPLAY_CHUNK = 32
"""Stream entries (1 change each, or a run of them) one read of a joiner's history takes: what
one client may owe on credit at a time, beside ``MAX_BUFFER`` of live frames."""
RETRIES = (0.2, 0.5, 1.0)
"""Pauses before each new attempt of a read the core asks again (subscription rule 9)."""

Entries = changefeed.Entries


@dataclass(eq=False)
class Client:
    """One websocket connection, the stories it follows, and what it still owes to be sent.

    Frames go straight to the transport, as ``websockets.broadcast`` does, while the transport
    keeps up; once it pushes back (its buffer is past ``WRITE_LIMIT``), frames wait in the
    client's ``Backlog``, which a flusher drains. Live frames (``write``) close it with 1013 past
    the budget; history it asked for (``write(frame, credit=True)``) is on credit, and ``credit_taken`` waits until
    the transport has it. A flusher that sees no progress for ``STALL_TIMEOUT`` closes it.
    """

    connection: ServerConnection
    ops: Ops = field(default_factory=lambda: Ops.of(0, 1))
    """The connection's op allowance (the gateway's ``ops_rate`` and ``ops_burst``)."""
    stories: set[str] = field(default_factory=set)
    backlog: Backlog = field(default_factory=Backlog)
    flusher: asyncio.Task[None] | None = None
    closed: bool = False
    closing: asyncio.Task[None] | None = None
    """The close we started (1013, 1008), kept so the loop does not drop it half-way."""
    taken: asyncio.Event | None = None
    """Set while nothing is owed on credit (made by the first write on credit that queues)."""

    def send(self, message: bytes) -> bool:
        """Send one JSON text message to this client alone (errors, pongs)."""
        return self.write(wire(message))

    def write(self, frame: bytes, credit: bool = False) -> bool:
        """Queue one whole websocket frame, already framed, without waiting; False once gone.

        Server frames are not masked and compression is off, so the frame of a change is the
        same bytes for every client. Whole frames written straight to the transport interleave
        safely with the control frames websockets writes itself (it flushes each as it makes it).
        ``credit``: history the client asked for, never refused for its size but paced instead
        (``credit_taken``); else a live frame, which closes the client past the budget.
        """
        connection = self.connection
        if self.closed or connection.protocol.state is not State.OPEN:
            return False
        if not self.backlog.owed and not connection.paused:
            try:
                connection.transport.write(frame)
            except Exception:  # a broken transport: the handler will see it close
                return False
            return True
        if credit:
            self.backlog.owe(frame)
            if self.taken is None:
                self.taken = asyncio.Event()
            self.taken.clear()
        elif not self.backlog.queue(frame):
            self.close(TRY_AGAIN_LATER, TOO_SLOW)
            return False
        if self.flusher is None:
            self.flusher = asyncio.get_running_loop().create_task(self._flush())
        return True

    async def credit_taken(self) -> None:
        """Wait until everything owed on credit has gone to the transport (or the client is
        closed): the pace at which a joiner's next piece of history is read."""
        if self.taken is not None and self.backlog.credit and not self.closed:
            await self.taken.wait()

    async def _flush(self) -> None:
        """Hand what is owed to the transport as it takes it; close with 1013 after
        ``STALL_TIMEOUT`` without progress."""
        connection, backlog = self.connection, self.backlog
        try:
            while backlog.owed:
                try:
                    async with asyncio.timeout(STALL_TIMEOUT):
                        await connection.drain()
                except TimeoutError:  # it takes nothing: it holds memory and helps no one
                    self.flusher = None
                    self.close(TRY_AGAIN_LATER, TOO_SLOW)
                    return
                while not connection.paused and (frame := backlog.next()) is not None:
                    connection.transport.write(frame)
                if not backlog.credit and self.taken is not None:
                    self.taken.set()
        except Exception:  # the connection went away: nothing left to flush
            backlog.clear()
        finally:
            self.flusher = None
            if self.taken is not None and not backlog.credit:
                self.taken.set()

    def close(self, code: int, reason: str, timeout: float = CLOSE_TIMEOUT) -> None:
        """Drop what is owed and close; the client resumes with ``since``.

        The close frame goes behind what the transport already holds (at most ``WRITE_LIMIT``);
        a client that has not taken it and answered within ``timeout`` is dropped.
        """
        if self.closed:
            return
        self.closed = True
        self.backlog.clear()
        if self.taken is not None:
            self.taken.set()
        if self.flusher is not None:
            self.flusher.cancel()
        self.closing = asyncio.get_running_loop().create_task(self._close(code, reason, timeout))

    async def _close(self, code: int, reason: str, timeout: float) -> None:
        """The closing handshake, bounded by ``timeout``; then the TCP connection is cut."""
        try:
            async with asyncio.timeout(timeout):
                await self.connection.close(code, reason)
        except TimeoutError:  # it reads nothing, not even its close frame
            self.connection.transport.abort()


@dataclass(eq=False)
class Channel:
    """One story's subscribers on this gateway: the live set and its group, and the joiners."""

    story: str
    group: Subscription | None = None
    """The live set's shared rules (None while no one is live)."""
    live: set[Client] = field(default_factory=set)
    joining: dict[Client, Subscription] = field(default_factory=dict)
    snapshots: dict[bool, tuple[int, bytes]] = field(default_factory=dict)
    """The snapshot frame (by ``reset``) at the version last read, while the live set is there."""
    reading: asyncio.Task[dict[str, JsonValue]] | None = None
    """The snapshot read in flight, shared by every joiner that asks meanwhile."""


class Gateway:
    """Tails the change streams and serves subscribers."""

    def __init__(
        self,
        client: StoreClient,
        origins: Iterable[str] | None = None,
        *,
        ops_rate: float = 0,
        ops_burst: int = 1,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        self.client = client
        self.headers = tuple(headers)
        """Added to every handshake answer (101, and a 403 or 426 refusal): the security headers
        the HTTP API sends on every answer (``services.http.security``, handed in by ``run``)."""
        self.ops_rate, self.ops_burst = ops_rate, ops_burst
        self.reads = ReadModel(client)
        self.origins = list(origins) if origins is not None else None
        self.channels: dict[str, Channel] = {}
        self.clients: set[Client] = set()
        self.delivered = 0
        self.away = False
        """Whether the tail's last read failed: its subscribers were told, and are told again
        when it is back (``away_frame``, ``resumed_frame``)."""
        self._reading = asyncio.Semaphore(READS_AT_ONCE)
        self._tasks: set[asyncio.Task[None]] = set()
        self._tail: asyncio.Task[None] | None = None
        self._server: Server | None = None

    # -- the tail: one reader of every partition's changes -------------------------------------

    async def tail(self, streams: changefeed.Positions | None = None) -> None:
        """Follow every partition's changes stream from ``streams`` (default: now) on, forever
        (``changefeed.follow``), each change to ``deliver``; a failing read tells subscribers the
        store is away, the next reply that it is back."""

        def entry(story: str, fields: Mapping[bytes, bytes]) -> None:
            for version, change in changes_of(fields):
                self.deliver(story, version, change)

        def failure(error: Exception) -> None:
            log.warning("change tail failed: %r", error)
            self._tell(away=True)

        await changefeed.follow(
            self.client,
            entry,
            streams,
            on_reply=lambda: self._tell(away=False),
            on_failure=failure,
        )

    def _tell(self, *, away: bool) -> None:
        """On a change of the tail's fortune, tell every subscriber of every channel: the store
        is away (their subscriptions stay), or back. Nothing is sent while nothing changed."""
        if away == self.away:
            return
        self.away = away
        for story, channel in self.channels.items():
            notice = away_frame(story) if away else resumed_frame(story)
            for client in [*channel.live, *channel.joining]:
                client.send(notice)

    def deliver(self, story: str, version: int, change: bytes) -> None:
        """One change from the tail: to every live subscriber, and to every joiner's rules."""
        channel = self.channels.get(story)
        if channel is None:
            return
        frame = wire(change)  # framed once, the same bytes for every client
        group = channel.group
        if group is not None:
            read = self._perform(channel, None, group, group.delivered(version, frame))
            if read is not None:  # a hole the tail left: filled once for the whole live set
                self._spawn(self._run(channel, None, group, read))
        if channel.joining:
            for client, joiner in list(channel.joining.items()):
                read = self._perform(channel, client, joiner, joiner.delivered(version, frame))
                if read is not None:
                    self._spawn(self._run(channel, client, joiner, read))
            self._merge(channel)

    # -- performing what the rules decide -------------------------------------------------------

    def _perform(
        self,
        channel: Channel,
        client: Client | None,
        sub: Subscription,
        actions: Actions,
        error: Exception | None = None,
        credit: bool = False,
    ) -> Read | None:
        """Do ``actions`` for one joiner (``client``) or the live set (None); the read asked, if any.

        ``error`` is the failed read's, for a ``Refuse`` (subscription rule 9). ``credit``: the
        actions answer a joiner's read, so its frames are history it asked for (owed on credit).
        """
        asked: Read | None = None
        for action in actions:
            if isinstance(action, Send):
                if client is None:
                    targets = list(channel.live)
                    if faults.ARMED:  # a test's fault point: half of them written, then death
                        half = len(targets) // 2
                        self._broadcast(targets[:half], action.frame)
                        faults.reached("gateway.delivering")
                        targets = targets[half:]
                    self._broadcast(targets, action.frame)
                elif not client.write(action.frame, credit):
                    self.drop(client)
                    return None
            elif isinstance(action, Close):
                if error is not None:  # the store went away (subscription rule 9)
                    log.warning("closing subscribers of %s: %s", channel.story, error)
                for gone in [client] if client is not None else list(channel.live):
                    gone.close(action.code, action.reason)
                    self.drop(gone)
                return None
            elif isinstance(action, Refuse):
                if client is not None:
                    self.unsubscribe(client, channel.story)
                    if not isinstance(error, DatelineError):
                        error = StoreUnavailable(f"the store is unreachable: {error}")
                    client.send(error_frame(error, channel.story))
                return None
            else:
                asked = action
        if asked is not None and not self._current(channel, client, sub):
            return None
        return asked

    def _broadcast(self, targets: list[Client], frame: bytes) -> None:
        """Write one framed change to each live client in ``targets``; drop those it cannot take."""
        for live in targets:
            if live.write(frame):
                self.delivered += 1
            else:
                self.drop(live)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _current(self, channel: Channel, client: Client | None, sub: Subscription) -> bool:
        """Whether ``sub`` still speaks for ``client`` (or the live set) on a channel still here."""
        if self.channels.get(channel.story) is not channel:
            return False
        return channel.group is sub if client is None else channel.joining.get(client) is sub

    async def _run(
        self, channel: Channel, client: Client | None, sub: Subscription, read: Read | None
    ) -> None:
        """Perform reads until ``sub`` asks for none: answer each, do what it then decides.

        A failed read goes to ``sub.failed`` (subscription rule 9); when it asks the same read
        again, the shell pauses for the next of ``RETRIES`` first. A joiner's reads take
        ``REPLAY_CHUNK`` entries and answer on credit; while its client still owes credit, the
        next read waits in a task of its own (``_paced``), so the client's next op is not held.
        """
        failures = 0
        count = MAX_REPLAY if client is None else REPLAY_CHUNK
        while read is not None:
            if client is not None and client.backlog.credit and not failures:
                self._spawn(self._paced(channel, client, sub, read))
                return
            error: Exception | None = None
            try:
                async with self._reading:
                    actions = await self._read(channel, sub, read, count)
                failures = 0
            except (DatelineError, redis.RedisError) as failure:
                if not self._current(channel, client, sub):
                    return
                error, actions = failure, sub.failed(len(RETRIES) - failures)
                if actions == (read,):
                    await asyncio.sleep(RETRIES[failures])
                    failures += 1
                    if not self._current(channel, client, sub):
                        return
                    continue
            if not self._current(channel, client, sub):
                return
            read = self._perform(channel, client, sub, actions, error, client is not None)
            self._merge(channel)

    async def _paced(self, channel: Channel, client: Client, sub: Subscription, read: Read) -> None:
        """Perform ``read`` once ``client`` has taken the history it owes (backlog rules)."""
        await client.credit_taken()
        if not client.closed and self._current(channel, client, sub):
            await self._run(channel, client, sub, read)

    async def _read(self, channel: Channel, sub: Subscription, read: Read, count: int) -> Actions:
        story = channel.story
        if isinstance(read, ReadSnapshot):
            version, frame = await self._snapshot(channel, read.reset)
            return sub.snapshot_read(version, frame)
        if isinstance(read, Replay):
            # the head first: the changes read after it hold every version up to it (a version
            # and its change are written together), so a reader resuming at the head during a
            # burst is never judged "not kept" for a change that landed between the two reads
            head = await self.reads.version(story)
            return sub.replayed(head, await self._changes(story, read.since, count))
        assert isinstance(read, FetchChanges)
        return sub.fetched(read.after, await self._changes(story, read.after, count))

    async def _snapshot(self, channel: Channel, reset: bool) -> tuple[int, bytes]:
        """The story's snapshot frame: read and framed once per version for every joiner.

        A crowd joining at once shares one store read (``channel.reading``); a joiner that
        arrives while the live set is still at the version last read gets that frame without
        asking the store. Either is safe by the core's rules: a snapshot older than the head is
        brought there by the tail and the fetches that fill its holes (subscription rule 5).
        """
        kept = channel.snapshots
        group = channel.group
        if kept and (group is None or group.version != next(iter(kept.values()))[0]):
            kept.clear()  # the live set has moved past it
        made = kept.get(reset)
        if made is not None:
            return made
        reading = channel.reading
        if reading is None:
            reading = asyncio.get_running_loop().create_task(
                self.reads.story(channel.story, DEFAULT_LIMIT, None)
            )
            channel.reading = reading

            def done(task: asyncio.Task[dict[str, JsonValue]]) -> None:
                if channel.reading is task:
                    channel.reading = None
                if not task.cancelled():
                    task.exception()  # retrieved: each waiter has it, or none is left to care

            reading.add_done_callback(done)
        state = await asyncio.shield(reading)  # a joiner that leaves cancels only its own wait
        made = snapshot_frame(channel.story, state, reset)
        if not kept or next(iter(kept.values()))[0] == made[0]:
            kept[reset] = made
        return made

    async def _changes(self, story: str, after: int, count: int) -> list[tuple[int, bytes]]:
        """The story's kept changes past version ``after`` (framed), ``count`` entries of them.

        An entry's id is the last version it holds, so the entries from ``after + 1`` on hold
        every kept change past ``after`` (the first perhaps some before it, dropped here). A read
        that stops short of the head is a hole the core asks for again (subscription rule 5).
        """
        rows: Entries = await self.client.xrange(  # type: ignore[assignment]  # bytes, not decoded
            keys.changes(story),
            f"{after + 1}-0",
            "+",
            count=count,  # entries: 1+ changes each
        )
        return [(v, wire(c)) for _, fields in rows for v, c in changes_of(fields) if v > after]

    def _merge(self, channel: Channel) -> None:
        """Move the joiners the core lets into the live set (subscription rule 8)."""
        for client, joiner in list(channel.joining.items()):
            group = joiner.joins(channel.group)
            if group is not None:
                channel.group = group
                del channel.joining[client]
                channel.live.add(client)

    # -- subscribing ---------------------------------------------------------------------------

    async def subscribe(self, client: Client, story: str, since: int | None) -> None:
        """Snapshot (or replay from ``since``), then live: no gap, no duplicate."""
        if story in client.stories:
            self.unsubscribe(client, story)
        if len(client.stories) >= MAX_SUBSCRIPTIONS:
            raise TooManySubscriptions(f"at most {MAX_SUBSCRIPTIONS} stories a connection")
        if not is_id(story) or not await self._exists(story):
            raise UnknownStory(f"story {shown(story)} does not exist")
        channel = self.channels.get(story)
        if channel is None:
            channel = self.channels[story] = Channel(story)
        joiner = Subscription()
        channel.joining[client] = joiner  # registered before the read (subscription rule 1)
        client.stories.add(story)
        read = self._perform(channel, client, joiner, joiner.start(since))
        await self._run(channel, client, joiner, read)

    async def _exists(self, story: str) -> bool:
        async with self._reading:
            return await self.reads.version(story) > 0

    def unsubscribe(self, client: Client, story: str) -> None:
        client.stories.discard(story)
        channel = self.channels.get(story)
        if channel is None:
            return
        channel.live.discard(client)
        joiner = channel.joining.pop(client, None)
        if joiner is not None:
            joiner.closed()
        if not channel.live and channel.group is not None:
            channel.group.closed()
            channel.group = None
        if not channel.joining and channel.group is None:
            del self.channels[story]

    def drop(self, client: Client) -> None:
        """Forget a client everywhere at once (closed, or too slow)."""
        for story in list(client.stories):
            self.unsubscribe(client, story)
        self.clients.discard(client)

    # -- connections ---------------------------------------------------------------------------

    async def handle(self, connection: ServerConnection) -> None:
        client = Client(connection, Ops.of(self.ops_rate, self.ops_burst))
        self.clients.add(client)
        try:
            async for message in connection:
                await self.on_message(client, message)
        except ConnectionClosed:
            pass
        finally:
            self.drop(client)

    async def on_message(self, client: Client, message: str | bytes) -> None:
        """One client frame: its op performed, or its refusal as an error frame; a flood closes
        the connection (1008)."""
        if client.closed:
            return
        verdict = client.ops.judge(time.monotonic())
        if verdict is not Verdict.PERFORM:
            if verdict is Verdict.CLOSE:
                client.close(1008, f"more than {FLOOD} times {self.ops_rate:g} frames a second")
            else:
                refused = RateLimited(
                    f"at most {self.ops_rate:g} ops a second (bursts of {self.ops_burst});"
                    " this one was not performed",
                    {"rate": self.ops_rate, "burst": self.ops_burst},
                )
                client.send(error_frame(refused, None))
            return
        story: str | None = None
        try:
            request = parse_request(message)
            if request.op == "ping":
                client.send(PONG)
                return
            story = request.story
            if request.op == "unsubscribe":
                self.unsubscribe(client, story)
                return
            since = request.since
            if since is not None and (type(since) is not int or since < 0):
                raise BadRequest("since must be a version number")
            await self.subscribe(client, story, since)
        except DatelineError as error:
            client.send(error_frame(error, story))

    async def start(self, host: str, port: int, sock: socket.socket | None = None) -> Server:
        """Listen, and start tailing the changes."""
        streams: dict[str, bytes | str] | None = None
        with contextlib.suppress(redis.RedisError, StoreUnavailable):  # away: the tail retries
            streams = await changefeed.positions(
                self.client
            )  # before any subscriber: nothing after is skipped
        self._tail = asyncio.get_running_loop().create_task(self.tail(streams))
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
            close_timeout=CLOSE_TIMEOUT,
            process_response=self._secure if self.headers else None,
        )
        return self._server

    def _secure(self, _connection: Any, _request: Any, response: Any) -> None:
        """Every handshake answer carries ``headers`` (accepted or refused alike)."""
        for name, value in self.headers:
            response.headers[name] = value

    async def stop(self) -> None:
        """Close every connection with 1001 (each bounded by ``STOP_TIMEOUT``), then the tasks."""
        if self._server is not None:
            for client in list(self.clients):  # websockets' own close would wait without bound
                client.close(1001, "going away: resume with since", STOP_TIMEOUT)
            self._server.close()
            await self._server.wait_closed()
        for task in [self._tail, *self._tasks]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
