"""Waiting for replicas: whether the writes a connection made are in N replicas' append-only files.

Rules (CONTRACT "Outgrowing one Redis", ``DATELINE_ACK_REPLICAS``):
- ``WAIT`` and ``WAITAOF`` count the writes of the connection they run on, so they are sent on
  the very connection that wrote (or, for a reader, that ran the ``XREADGROUP`` whose delivery
  is itself replicated after the entries it delivered: docs/architecture.md);
- ``WAIT N`` first, then ``WAITAOF 1 N``: a replica answers the primary's ask for
  acknowledgements when it has applied a write, before its fsync, so a WAITAOF sent with the
  write waits for the replica's next once-a-second acknowledgement, while one sent after the
  WAIT is answered after the fsync (docs/benchmarks.md has the figures);
- each waits ``SLICE_MS`` and the pair is sent again until the replicas have the writes or the
  time given has passed: a long wait would hold the connection, and the server checks such
  timeouts only about ten times a second.
"""

from __future__ import annotations

import asyncio

import redis.asyncio as redis

SLICE_MS = 10
"""How long one ``WAIT`` or ``WAITAOF`` may block its connection (a slice that runs out costs
up to 100 ms: the server's timer)."""


async def replicated(client: redis.Redis, replicas: int, timeout: float) -> int:
    """How many replicas have every write ``client``'s one connection made, in their append-only
    files: at least ``replicas``, or fewer once ``timeout`` seconds have passed. ``client`` must
    be a single-connection client (``single_connection_client=True``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        await client.execute_command("WAIT", replicas, SLICE_MS)  # type: ignore[no-untyped-call]
        _, acked = await client.execute_command("WAITAOF", 1, replicas, SLICE_MS)  # type: ignore[no-untyped-call]
        if int(acked) >= replicas or loop.time() >= deadline:
            return int(acked)
