"""One write per response: every answer arrives whole, in order, and before a close."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

import pytest

from tests.conftest import ADMIN_TOKEN


def _connect(api_url: str) -> socket.socket:
    parts = urlsplit(api_url)
    sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=10)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_pipelined_requests_get_whole_answers_in_order(api_url: str) -> None:
    """Three requests sent at once get three whole answers, head and body each, in order; the
    last one's ``Connection: close`` ends the connection after its body, never before."""
    request = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
    missing = b"GET /stories/no-such-story HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    with _connect(api_url) as sock:
        sock.sendall(request + request + missing)
        answer = _read_all(sock)
    heads = answer.split(b"HTTP/1.1 ")[1:]
    assert [h[:3] for h in heads] == [b"200", b"200", b"404"]
    assert answer.endswith(b"}")  # the 404's JSON body arrived before the close
    assert b'"unknown_story"' in heads[2]


def test_an_error_before_the_body_is_read_still_arrives(api_url: str) -> None:
    """A write without a token is refused with its whole 401 JSON body, in one piece that a
    client reading once gets complete."""
    body = b'{"type": "entry.posted", "data": {}}'
    request = (
        b"POST /stories/s/events HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body
    )
    with _connect(api_url) as sock:
        sock.sendall(request)
        answer = _read_all(sock)
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    assert len(payload) == length
    assert b'"unauthorized"' in payload


def _slow_oversized_post(api_url: str, size: int, close: bool) -> bytes:
    """POST a body of ``size`` bytes in 256 KiB pieces with pauses, reading nothing until all
    of it is sent (as most clients do); what came back."""
    head = (
        "POST /stories/s/events HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {ADMIN_TOKEN}\r\nContent-Length: {size}\r\n"
        + ("Connection: close\r\n" if close else "")
        + "\r\n"
    )
    piece = b" " * (256 * 1024)
    with _connect(api_url) as sock:
        sock.sendall(head.encode())
        sent = 0
        while sent < size:
            chunk = piece[: size - sent]
            sock.sendall(chunk)
            sent += len(chunk)
            time.sleep(0.005)
        sock.settimeout(10)
        if close:
            return _read_all(sock)
        answer = b""
        while b"}}" not in answer:
            chunk = sock.recv(65536)
            assert chunk, "closed before the answer"
            answer += chunk
        return answer


@pytest.mark.parametrize("close", [True, False], ids=["connection-close", "keep-alive"])
@pytest.mark.parametrize("mib", [2, 10])
def test_an_oversized_body_gets_its_whole_413_while_still_being_sent(
    api_url: str, mib: int, close: bool
) -> None:
    """A body over the limit is answered 413 at once, and the answer is not lost to a reset
    while the client is still sending: the rest of the body is read and dropped first."""
    answer = _slow_oversized_post(api_url, mib * 1024 * 1024, close)
    assert answer.startswith(b"HTTP/1.1 413")
    assert b'"payload_too_large"' in answer
