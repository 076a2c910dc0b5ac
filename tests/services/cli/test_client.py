"""The command line's HTTP client: the token, retries with one key, no answer, URLs, paging."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest

from services.cli.client import Api, Target
from tests.conftest import free_port
from tests.services.cli.dateline import dateline, head


def test_writing_without_a_token_says_how_to_give_one(api_url: str, opened: str) -> None:
    """No --token and no DATELINE_TOKEN: exit 2 unauthorized, naming both ways to give one."""
    result = dateline(api_url, None, "pin", opened, "e1")
    assert result.exit_code == 2
    assert "unauthorized" in result.stderr
    assert "DATELINE_TOKEN" in result.stderr


class LossyProxy:
    """A TCP proxy in front of the API that hangs up on its first connections once the API has
    answered: the write is stored, and the command never hears so."""

    def __init__(self, upstream: str, drop: int = 1) -> None:
        target = urlsplit(upstream)
        self.upstream = (target.hostname or "127.0.0.1", target.port or 80)
        self.drop = drop
        self.dropped = 0
        self.connections = 0
        self.lock = threading.Lock()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self.server.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._link, args=(conn,), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _link(self, conn: socket.socket) -> None:
        upstream = socket.create_connection(self.upstream)
        with self.lock:
            self.connections += 1
            dropping = self.dropped < self.drop
            self.dropped += dropping
        threading.Thread(target=self._pump, args=(conn, upstream), daemon=True).start()
        if dropping:
            upstream.recv(65536)  # the API answered: the request was handled
            # shutdown first: a bare close() leaves the socket open while the pump thread is
            # still in recv() on it, and the command would wait out its 30 s read timeout
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
            upstream.close()
            return
        self._pump(upstream, conn)
        conn.close()
        upstream.close()


@pytest.fixture
def lossy(api_url: str) -> Iterator[LossyProxy]:
    proxy = LossyProxy(api_url)
    yield proxy
    proxy.close()


def test_a_write_whose_answer_was_lost_is_retried_with_its_key_and_lands_once(
    api_url: str, editor_token: str, opened: str, lossy: LossyProxy
) -> None:
    """The first answer is lost after the append; the retry (same key) gets it: one event."""
    result = dateline(
        lossy.url, editor_token, "publish", opened, "--entry-id", "e1", "--body", "<p>x</p>"
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"published e1 as version 2 of {opened}\n"
    assert lossy.connections == 2
    assert head(api_url, opened) == 2


class Failing(BaseHTTPRequestHandler):
    """An API that answers every request 503 store_unavailable, and remembers each key sent."""

    keys: list[str | None]

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.keys.append(self.headers.get("idempotency-key"))
        body = (
            b'{"error":{"code":"store_unavailable","message":"the store is down","details":null}}'
        )
        self.send_response(503)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


def test_a_server_answering_503_is_retried_with_one_key_then_exits_3() -> None:
    """Four attempts, one Idempotency-Key, then exit 3 with the API's message and the key to reuse."""
    keys: list[str | None] = []
    handler = type("Handler", (Failing,), {"keys": keys})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        result = dateline(url, "t", "publish", "s", "--body", "<p>x</p>")
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code == 3
    assert len(keys) == 4
    assert len(set(keys)) == 1
    assert keys[0]
    assert "503 store_unavailable" in result.stderr
    assert f"--idempotency-key {keys[0]}" in result.stderr


def test_no_server_exits_3() -> None:
    """An API URL where nothing listens: exit 3, 'no answer' on stderr, nothing on stdout."""
    url = f"http://127.0.0.1:{free_port()}"
    result = dateline(url, "t", "story", "open", "s", "--title", "T")
    assert result.exit_code == 3
    assert "no answer" in result.stderr
    assert result.stdout == ""


def test_an_api_url_that_is_not_one_is_a_usage_error() -> None:
    """--api-url without http(s):// or with a bad port: exit 2, said so, nothing sent."""
    for url in ("nonsense", "ftp://example.org", "http://[::1"):
        result = dateline(url, "t", "pin", "s", "e1")
        assert result.exit_code == 2, url
        assert "not an API URL" in result.stderr


def test_the_client_pages_through_the_events(
    api_url: str, auditor_token: str, story_id: str, history: list[dict[str, Any]]
) -> None:
    """events_pages follows next_from_version: pages of 3, 3 and 2, every version once."""
    with Api(Target.of(api_url, auditor_token)) as client:
        pages = list(client.events_pages(story_id, limit=3))
    assert [len(p) for p in pages] == [3, 3, 2]
    assert [e["version"] for p in pages for e in p] == list(range(1, 9))
