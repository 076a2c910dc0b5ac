"""One write per response: every answer arrives whole, in order, and before a close."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit


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
