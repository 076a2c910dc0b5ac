"""The newsroom and token commands against the running API: output, exit codes, idempotent retries."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from click.testing import Result
from typer.testing import CliRunner

from services.cli.app import app
from tests.conftest import ADMIN_TOKEN, ROOT, free_port

runner = CliRunner()
QUIET_ENV = {"COLUMNS": "200", "DATELINE_TOKEN": None, "DATELINE_API_URL": None}


def dateline(api_url: str, token: str | None, *args: str, stdin: str | None = None) -> Result:
    """Run ``dateline --api-url … --token … ARGS`` in-process."""
    given = ["--api-url", api_url] + (["--token", token] if token else [])
    return runner.invoke(app, [*given, *args], input=stdin, env=QUIET_ENV)


def run_module(
    *args: str, stdin: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m services ARGS`` as its own process."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DATELINE_")}
    return subprocess.run(
        [sys.executable, "-m", "services", *args],
        cwd=ROOT,
        env={**environment, "COLUMNS": "200", **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def state(api_url: str, story: str, version: int) -> dict[str, Any]:
    """The story's state once the projection has reached ``version``."""
    r = httpx.get(f"{api_url}/stories/{story}", params={"min_version": version, "limit": 500})
    r.raise_for_status()
    return dict(r.json())


def head(api_url: str, story: str) -> int:
    """The story's version in the record (the events, not the projection)."""
    r = httpx.get(
        f"{api_url}/stories/{story}/events",
        params={"limit": 10_000},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    r.raise_for_status()
    return len(r.json()["events"])


@pytest.fixture
def opened(api_url: str, editor_token: str, story_id: str) -> str:
    """A story opened through the CLI (version 1)."""
    result = dateline(api_url, editor_token, "story", "open", story_id, "--title", "Storm, live")
    assert result.exit_code == 0, result.stderr
    return story_id


def published(
    api_url: str, token: str, story: str, entry: str, body: str = "<p>First.</p>"
) -> None:
    result = dateline(api_url, token, "publish", story, "--entry-id", entry, "--body", body)
    assert result.exit_code == 0, result.stderr


# -- tokens ------------------------------------------------------------------------------------


def test_token_create_prints_a_token_that_works(api_url: str, story_id: str) -> None:
    """The admin creates an editor token; stdout is the token alone, and it can open a story."""
    name = f"jane-{uuid.uuid4().hex[:6]}"
    result = dateline(api_url, ADMIN_TOKEN, "token", "create", "--role", "editor", "--name", name)
    assert result.exit_code == 0, result.stderr
    token = result.stdout.strip()
    assert token.startswith("dl_")
    assert "\n" not in token
    assert f"editor:{name}" in result.stderr

    opened = dateline(api_url, token, "story", "open", story_id, "--title", "By Jane", "--json")
    assert opened.exit_code == 0, opened.stderr
    assert json.loads(opened.stdout)["actor"] == f"editor:{name}"


def test_token_create_json_prints_the_whole_answer(api_url: str) -> None:
    """--json prints {token, role, name}; a server-picked name is role-<hex>."""
    result = dateline(api_url, ADMIN_TOKEN, "token", "create", "--role", "auditor", "--json")
    assert result.exit_code == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["role"] == "auditor"
    assert answer["name"].startswith("auditor-")
    assert answer["token"].startswith("dl_")


def test_an_editor_cannot_create_tokens(api_url: str, editor_token: str) -> None:
    """The API's 403 is a refusal: exit 2, with its message and code on stderr."""
    result = dateline(api_url, editor_token, "token", "create", "--role", "admin")
    assert result.exit_code == 2
    assert "forbidden" in result.stderr
    assert "admin token" in result.stderr
    assert result.stdout == ""


def test_a_taken_token_name_is_refused(api_url: str) -> None:
    """A second token with the same name: exit 2 token_name_taken."""
    name = f"dup-{uuid.uuid4().hex[:6]}"
    first = dateline(api_url, ADMIN_TOKEN, "token", "create", "--role", "editor", "--name", name)
    assert first.exit_code == 0, first.stderr
    second = dateline(api_url, ADMIN_TOKEN, "token", "create", "--role", "editor", "--name", name)
    assert second.exit_code == 2
    assert "token_name_taken" in second.stderr


def test_token_revoke_stops_the_token_at_once(api_url: str, story_id: str) -> None:
    """A revoked token is refused on its next write (401, exit 2)."""
    name = f"gone-{uuid.uuid4().hex[:6]}"
    made = dateline(api_url, ADMIN_TOKEN, "token", "create", "--role", "editor", "--name", name)
    token = made.stdout.strip()
    revoked = dateline(api_url, ADMIN_TOKEN, "token", "revoke", name)
    assert revoked.exit_code == 0, revoked.stderr
    assert revoked.stdout.strip() == f"revoked {name}"
    refused = dateline(api_url, token, "story", "open", story_id, "--title", "T")
    assert refused.exit_code == 2
    assert "unauthorized" in refused.stderr


def test_an_unknown_role_is_a_usage_error(api_url: str) -> None:
    """--role must be editor, auditor or admin: exit 2 before anything is sent."""
    result = dateline(api_url, ADMIN_TOKEN, "token", "create", "--role", "owner")
    assert result.exit_code == 2
    assert "owner" in result.stderr


# -- stories -----------------------------------------------------------------------------------


def test_story_open_update_and_close_each_print_one_line(
    api_url: str, editor_token: str, story_id: str
) -> None:
    """Each prints what it did and the version; the story ends closed with its new title."""
    opened = dateline(
        api_url, editor_token, "story", "open", story_id, "--title", "Storm", "--summary", "S"
    )
    assert opened.exit_code == 0, opened.stderr
    assert opened.stdout == f"opened {story_id} as version 1\n"
    updated = dateline(
        api_url, editor_token, "story", "update", story_id, "--title", "Storm Oriane"
    )
    assert updated.stdout == f"updated {story_id} as version 2\n"
    closed = dateline(api_url, editor_token, "story", "close", story_id, "--note", "Over.")
    assert closed.stdout == f"closed {story_id} as version 3\n"

    s = state(api_url, story_id, 3)
    assert (s["title"], s["summary"], s["status"], s["closed_note"]) == (
        "Storm Oriane",
        "S",
        "closed",
        "Over.",
    )


def test_opening_a_story_twice_is_refused(api_url: str, editor_token: str, opened: str) -> None:
    """The second open: exit 2 story_exists, nothing appended."""
    result = dateline(api_url, editor_token, "story", "open", opened, "--title", "Again")
    assert result.exit_code == 2
    assert "story_exists" in result.stderr
    assert head(api_url, opened) == 1


def test_story_update_needs_a_title_or_a_summary(
    api_url: str, editor_token: str, opened: str
) -> None:
    """Neither given: a usage error (exit 2), nothing sent."""
    result = dateline(api_url, editor_token, "story", "update", opened)
    assert result.exit_code == 2
    assert "--title" in result.stderr
    assert head(api_url, opened) == 1


# -- entries -----------------------------------------------------------------------------------


def test_publish_prints_the_entry_the_version_and_the_story(
    api_url: str, editor_token: str, opened: str
) -> None:
    """The one-line summary names the server-assigned entry id, the version and the story."""
    result = dateline(
        api_url,
        editor_token,
        "publish",
        opened,
        "--body",
        "<p>Landfall near <strong>Brest</strong>.</p>",
        "--headline",
        "Landfall",
        "--key-event",
        "--time-label",
        "1850 GMT",
    )
    assert result.exit_code == 0, result.stderr
    words = result.stdout.split()
    assert words[0] == "published"
    assert words[2:] == ["as", "version", "2", "of", opened]
    entry = state(api_url, opened, 2)["entries"][0]
    assert entry["entry_id"] == words[1]
    assert (entry["headline"], entry["key_event"], entry["time_label"]) == (
        "Landfall",
        True,
        "1850 GMT",
    )
    assert entry["body"] == "<p>Landfall near <strong>Brest</strong>.</p>"


def test_publish_json_prints_the_envelope_as_stored(
    api_url: str, editor_token: str, opened: str
) -> None:
    """--json prints the stored envelope: the same bytes GET …/events serves."""
    result = dateline(
        api_url, editor_token, "publish", opened, "--entry-id", "e1", "--body", "<p>é</p>", "--json"
    )
    assert result.exit_code == 0, result.stderr
    envelope = json.loads(result.stdout)
    assert (envelope["type"], envelope["version"], envelope["data"]["entry_id"]) == (
        "entry.published",
        2,
        "e1",
    )
    served = httpx.get(
        f"{api_url}/stories/{opened}/events",
        params={"from_version": 2},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert result.stdout.strip().encode() in served.content


def test_the_body_can_come_from_stdin(api_url: str, editor_token: str, opened: str) -> None:
    """--body - reads the HTML from stdin, exactly as given."""
    body = "<p>From a pipe,\nwith a line break.</p>"
    result = dateline(
        api_url, editor_token, "publish", opened, "--entry-id", "piped", "--body", "-", stdin=body
    )
    assert result.exit_code == 0, result.stderr
    assert state(api_url, opened, 2)["entries"][0]["body"] == body


def test_the_body_can_come_from_a_file(
    api_url: str, editor_token: str, opened: str, tmp_path: Path
) -> None:
    """--body-file reads the HTML from a file; correct takes it too."""
    first, fixed = tmp_path / "first.html", tmp_path / "fixed.html"
    first.write_text("<p>Winds of 150 km/h.</p>", encoding="utf-8")
    fixed.write_text("<ul><li>Winds of 130 km/h.</li></ul>", encoding="utf-8")
    published = dateline(
        api_url, editor_token, "publish", opened, "--entry-id", "e1", "--body-file", str(first)
    )
    assert published.exit_code == 0, published.stderr
    corrected = dateline(
        api_url,
        editor_token,
        "correct",
        opened,
        "e1",
        "--body-file",
        str(fixed),
        "--note",
        "We said 150.",
    )
    assert corrected.exit_code == 0, corrected.stderr
    entry = state(api_url, opened, 3)["entries"][0]
    assert entry["body"] == "<ul><li>Winds of 130 km/h.</li></ul>"
    assert entry["corrections"][0]["note"] == "We said 150."


def test_a_body_is_needed_once(
    api_url: str, editor_token: str, opened: str, tmp_path: Path
) -> None:
    """No body, both --body and --body-file, or a missing file: exit 2, nothing appended."""
    page = tmp_path / "page.html"
    page.write_text("<p>x</p>", encoding="utf-8")
    none = dateline(api_url, editor_token, "publish", opened)
    both = dateline(
        api_url, editor_token, "publish", opened, "--body", "<p>x</p>", "--body-file", str(page)
    )
    missing = dateline(
        api_url, editor_token, "publish", opened, "--body-file", str(tmp_path / "no")
    )
    assert [r.exit_code for r in (none, both, missing)] == [2, 2, 2]
    assert "--body" in none.stderr
    assert "not both" in both.stderr
    assert "no" in missing.stderr
    assert head(api_url, opened) == 1


def test_every_newsroom_command_lands_its_event(
    api_url: str, editor_token: str, opened: str
) -> None:
    """edit, correct, pin, embed attach and remove, unpin, retract: each summary, then the state."""
    published(api_url, editor_token, opened, "e1", "<p>Teh storm.</p>")
    published(api_url, editor_token, opened, "e2", "<p>Second.</p>")
    steps = [
        (["edit", opened, "e1", "--body", "<p>The storm.</p>"], "edited e1 as version 4"),
        (
            ["correct", opened, "e2", "--body", "<p>Second, fixed.</p>", "--note", "Fixed."],
            "corrected e2 as version 5",
        ),
        (["pin", opened, "e1"], "pinned e1 as version 6"),
        (
            [
                "embed",
                "attach",
                opened,
                "e1",
                "--kind",
                "map",
                "--url",
                "https://www.openstreetmap.org/#map=8/48.4/-4.5",
                "--caption",
                "The coast",
                "--embed-id",
                "map-1",
            ],
            "attached map-1 to e1 as version 7",
        ),
        (
            [
                "embed",
                "attach",
                opened,
                "e1",
                "--kind",
                "image",
                "--url",
                "https://example.org/a.jpg",
                "--alt",
                "Waves",
            ],
            "to e1 as version 8",
        ),
        (["embed", "remove", opened, "e1", "map-1"], "removed map-1 from e1 as version 9"),
        (["unpin", opened, "e1"], "unpinned e1 as version 10"),
        (["retract", opened, "e2", "--note", "Not confirmed."], "retracted e2 as version 11"),
    ]
    for args, summary in steps:
        result = dateline(api_url, editor_token, *args)
        assert result.exit_code == 0, (args, result.stderr)
        assert summary in result.stdout
        assert result.stdout.rstrip().endswith(f"of {opened}")

    s = state(api_url, opened, 11)
    e1, e2 = (next(e for e in s["entries"] if e["entry_id"] == i) for i in ("e1", "e2"))
    assert e1["body"] == "<p>The storm.</p>"
    assert e1["corrections"] == []
    assert [(m["kind"], m["alt"]) for m in e1["embeds"]] == [("image", "Waves")]
    assert s["pinned"] is None
    assert e2["status"] == "retracted"
    assert e2["retraction"]["note"] == "Not confirmed."


def test_correcting_a_retracted_entry_is_refused(
    api_url: str, editor_token: str, opened: str
) -> None:
    """Exit 2 with the API's message and code (invalid_state) on stderr; nothing appended."""
    published(api_url, editor_token, opened, "e1")
    retracted = dateline(api_url, editor_token, "retract", opened, "e1", "--note", "Wrong.")
    assert retracted.exit_code == 0, retracted.stderr
    result = dateline(
        api_url, editor_token, "correct", opened, "e1", "--body", "<p>x</p>", "--note", "n"
    )
    assert result.exit_code == 2
    assert "invalid_state" in result.stderr
    assert "'e1' is retracted" in result.stderr
    assert result.stdout == ""
    assert head(api_url, opened) == 3


def test_html_outside_the_subset_is_refused_naming_the_tag(
    api_url: str, editor_token: str, opened: str
) -> None:
    """A <script> body: exit 2, invalid_event, the refused tag named; nothing appended."""
    result = dateline(
        api_url, editor_token, "publish", opened, "--body", "<p>Hi</p><script>alert(1)</script>"
    )
    assert result.exit_code == 2
    assert "invalid_event" in result.stderr
    assert "tag <script>" in result.stderr
    assert head(api_url, opened) == 1


def test_an_embed_off_the_allow_list_is_refused(
    api_url: str, editor_token: str, opened: str
) -> None:
    """A video from an unknown provider: exit 2 invalid_event naming the URL problem."""
    published(api_url, editor_token, opened, "e1")
    url = "https://videos.example.org/v/1"
    result = dateline(
        api_url, editor_token, "embed", "attach", opened, "e1", "--kind", "video", "--url", url
    )
    assert result.exit_code == 2
    assert "invalid_event" in result.stderr
    assert "refused:" in result.stderr
    assert head(api_url, opened) == 2


def test_a_stale_expected_version_is_a_conflict(
    api_url: str, editor_token: str, opened: str
) -> None:
    """--expected-version that is not the story's version: exit 2 version_conflict with details."""
    result = dateline(
        api_url, editor_token, "publish", opened, "--body", "<p>x</p>", "--expected-version", "7"
    )
    assert result.exit_code == 2
    assert "version_conflict" in result.stderr
    assert '"current_version":1' in result.stderr
    ok = dateline(
        api_url, editor_token, "publish", opened, "--body", "<p>x</p>", "--expected-version", "1"
    )
    assert ok.exit_code == 0, ok.stderr


def test_writing_to_an_unknown_story_is_refused(api_url: str, editor_token: str) -> None:
    """A story that was never opened: exit 2 unknown_story."""
    result = dateline(api_url, editor_token, "pin", f"never-{uuid.uuid4().hex[:8]}", "e1")
    assert result.exit_code == 2
    assert "unknown_story" in result.stderr


def test_writing_without_a_token_says_how_to_give_one(api_url: str, opened: str) -> None:
    """No --token and no DATELINE_TOKEN: exit 2 unauthorized, naming both ways to give one."""
    result = dateline(api_url, None, "pin", opened, "e1")
    assert result.exit_code == 2
    assert "unauthorized" in result.stderr
    assert "DATELINE_TOKEN" in result.stderr


# -- idempotency and retries -------------------------------------------------------------------


def test_a_rerun_with_the_same_key_appends_once(
    api_url: str, editor_token: str, opened: str
) -> None:
    """The same command twice with --idempotency-key: the same answer, one event."""
    args = ["publish", opened, "--body", "<p>Once.</p>", "--idempotency-key", "k-once", "--json"]
    first = dateline(api_url, editor_token, *args)
    again = dateline(api_url, editor_token, *args)
    assert first.exit_code == again.exit_code == 0
    assert first.stdout == again.stdout
    assert json.loads(first.stdout)["idempotency_key"] == "k-once"
    assert head(api_url, opened) == 2


def test_the_same_key_for_another_write_is_refused(
    api_url: str, editor_token: str, opened: str
) -> None:
    """A pinned key reused with another body: exit 2 idempotency_key_reused, nothing appended."""
    key = f"k-{uuid.uuid4().hex}"
    first = dateline(
        api_url, editor_token, "publish", opened, "--body", "<p>a</p>", "--idempotency-key", key
    )
    other = dateline(
        api_url, editor_token, "publish", opened, "--body", "<p>b</p>", "--idempotency-key", key
    )
    assert first.exit_code == 0, first.stderr
    assert other.exit_code == 2
    assert "idempotency_key_reused" in other.stderr
    assert head(api_url, opened) == 2


def test_each_run_sends_a_fresh_key(api_url: str, editor_token: str, opened: str) -> None:
    """Without --idempotency-key, two runs of the same command are two writes, each keyed."""
    runs = [
        dateline(api_url, editor_token, "publish", opened, "--body", "<p>Same.</p>", "--json")
        for _ in range(2)
    ]
    keys = [json.loads(r.stdout)["idempotency_key"] for r in runs]
    assert all(keys)
    assert keys[0] != keys[1]
    assert head(api_url, opened) == 3


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


# -- as a program ------------------------------------------------------------------------------


def test_python_m_services_publishes_from_stdin_with_the_environment(
    api_url: str, editor_token: str, opened: str
) -> None:
    """A real process: DATELINE_API_URL and DATELINE_TOKEN, the body on stdin, exit 0."""
    proc = run_module(
        "publish",
        opened,
        "--entry-id",
        "piped",
        "--body",
        "-",
        stdin="<p>Through a pipe.</p>",
        DATELINE_API_URL=api_url,
        DATELINE_TOKEN=editor_token,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"published piped as version 2 of {opened}\n"
    assert state(api_url, opened, 2)["entries"][0]["body"] == "<p>Through a pipe.</p>"


def test_python_m_services_refusals_and_no_server_exit_2_and_3(
    api_url: str, editor_token: str, opened: str
) -> None:
    """A real process: a refused body exits 2 naming the tag; a closed port exits 3."""
    refused = run_module(
        "--api-url",
        api_url,
        "--token",
        editor_token,
        "publish",
        opened,
        "--body",
        "<iframe></iframe>",
    )
    assert refused.returncode == 2
    assert "tag <iframe>" in refused.stderr
    assert refused.stdout == ""
    gone = run_module(
        "--api-url", f"http://127.0.0.1:{free_port()}", "--token", "t", "pin", opened, "e1"
    )
    assert gone.returncode == 3
    assert "no answer" in gone.stderr
    assert "--idempotency-key" in gone.stderr


OLDER = [[], ["serve"], ["api"], ["projector"], ["gateway"], ["demo"], ["tail"]]
GROUPS = [["token"], ["story"], ["embed"]]
NEWSROOM = [
    ["token", "create"],
    ["token", "revoke"],
    ["story", "open"],
    ["story", "update"],
    ["story", "close"],
    ["publish"],
    ["correct"],
    ["edit"],
    ["retract"],
    ["pin"],
    ["unpin"],
    ["embed", "attach"],
    ["embed", "remove"],
]


@pytest.mark.parametrize("command", OLDER + GROUPS + NEWSROOM, ids=lambda c: " ".join(c) or "-")
def test_help_of_every_command_exits_0(command: list[str]) -> None:
    """--help works for each command; the newsroom commands show examples."""
    result = runner.invoke(app, [*command, "--help"], env=QUIET_ENV)
    assert result.exit_code == 0, result.stderr
    assert "Usage" in result.stdout
    if command in NEWSROOM:
        assert "Example" in result.stdout
        assert f"dateline {' '.join(command)}" in result.stdout


def test_the_global_options_are_listed_with_their_environment() -> None:
    """--token and --api-url are in dateline --help, with their environment variables."""
    result = runner.invoke(app, ["--help"], env=QUIET_ENV)
    for name in ("--token", "DATELINE_TOKEN", "--api-url", "DATELINE_API_URL"):
        assert name in result.stdout
