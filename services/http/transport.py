"""uvicorn's httptools protocol with one write per response and a lingering close.

Rules:
- what the protocol writes in one turn of the event loop leaves in one ``write`` of the real
  transport, at the end of that turn: uvicorn writes a response's head when the application
  sends ``http.response.start`` and its body when it sends ``http.response.body``, two system
  calls (and two loopback deliveries) for what is one small answer;
- nothing is reordered, dropped or held past the turn: ``close``, ``write_eof`` and the
  protocol's flow control see every byte written before them;
- a close while the client is still sending its request body (a 413 to a ``Connection: close``
  request, a keep-alive timeout in the middle of a slow upload) lingers: the answer is sent and
  the write side shut, and what still arrives is read and dropped until the body ends, or
  ``LINGER_BYTES`` more have come, or ``LINGER_SECONDS`` have passed. Closing a socket that
  still has unread data sends a reset, which can destroy the answer before the client reads it
  (CONTRACT second edition: a 413 arrives whole "even while the client is still sending");
- everything else is the real transport's.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

LINGER_BYTES = 16 * 1024 * 1024
"""Most of a request body read and dropped after its answer (CONTRACT: up to 16 MiB)."""
LINGER_SECONDS = 30.0
"""Longest a connection lingers for the rest of a body before it is closed anyway."""


class Coalescing:
    """A transport that gathers the writes of one loop turn and sends them as one, and whose
    ``close`` lingers while its protocol still expects request body."""

    __slots__ = ("_loop", "_pending", "_protocol", "_real", "_timer", "lingering")

    def __init__(
        self, real: asyncio.Transport, loop: asyncio.AbstractEventLoop, protocol: OneWriteProtocol
    ) -> None:
        self._real = real
        self._loop = loop
        self._protocol = protocol
        self._pending: list[bytes] = []
        self.lingering = False
        self._timer: asyncio.TimerHandle | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data or self.lingering:
            return
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(bytes(data))

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def flush(self) -> None:
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending.clear()
        if not self._real.is_closing():
            self._real.write(data)

    def get_write_buffer_size(self) -> int:
        return self._real.get_write_buffer_size() + sum(len(c) for c in self._pending)

    def is_closing(self) -> bool:
        return self.lingering or self._real.is_closing()

    def write_eof(self) -> None:
        self.flush()
        self._real.write_eof()

    def close(self) -> None:
        self.flush()
        if self.lingering:
            return
        if not self._protocol.body_pending or self._real.is_closing():
            self._real.close()
            return
        self.lingering = True  # the answer is out; take the rest of the body, then close
        if self._real.can_write_eof():
            self._real.write_eof()
        self._real.resume_reading()  # uvicorn may have paused it, and will not resume it now
        self._timer = self._loop.call_later(LINGER_SECONDS, self.end)

    def end(self) -> None:
        """Close for good (the body ended, or lingering reached its bound)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._real.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class OneWriteProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol on a ``Coalescing`` transport."""

    body_pending = False
    """Whether a request's headers have been read and its body has not ended yet."""
    _coalescing: Coalescing
    _lingered = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._coalescing = Coalescing(transport, asyncio.get_running_loop(), self)
        super().connection_made(self._coalescing)  # type: ignore[arg-type]  # a transport in all it does

    def data_received(self, data: bytes) -> None:
        if self._coalescing.lingering:
            self._lingered += len(data)
            if self._lingered > LINGER_BYTES:
                self._coalescing.end()
                return
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self.body_pending = True
        if self._coalescing.lingering:  # a request after the close: never run, never answered
            return
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self.body_pending = False
        super().on_message_complete()
        if self._coalescing.lingering:
            self._coalescing.end()
