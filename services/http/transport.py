"""One write per HTTP response: uvicorn's httptools protocol with its writes coalesced.

Rules:
- what the protocol writes in one turn of the event loop leaves in one ``write`` of the real
  transport, at the end of that turn: uvicorn writes a response's head when the application
  sends ``http.response.start`` and its body when it sends ``http.response.body``, two system
  calls (and two loopback deliveries) for what is one small answer;
- nothing is reordered, dropped or held past the turn: ``close``, ``write_eof`` and the
  protocol's flow control see every byte written before them;
- everything else is the real transport's.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class Coalescing:
    """A transport that gathers the writes of one loop turn and sends them as one."""

    __slots__ = ("_loop", "_pending", "_real")

    def __init__(self, real: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._real = real
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
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

    def write_eof(self) -> None:
        self.flush()
        self._real.write_eof()

    def close(self) -> None:
        self.flush()
        self._real.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class OneWriteProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol on a ``Coalescing`` transport."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        coalescing = Coalescing(transport, asyncio.get_running_loop())
        super().connection_made(coalescing)  # type: ignore[arg-type]  # a transport in all it does
