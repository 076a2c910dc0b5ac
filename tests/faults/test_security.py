"""Security basics, each tested (issue 11, 11).

Tokens are 256 random bits kept on the store only as their SHA-256, compared in constant time,
and refused by every API process the moment they are revoked; every answer carries the security
headers (``services/http/security.py``); no token and no store password reaches a log line; and
``/metrics``, which anyone may read, names no story and no token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import inspect
import re
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import redis as redis_sync
from websockets.asyncio.client import connect

from services.http import security
from services.store import keys
from services.store import tokens as token_module
from tests.conftest import ADMIN_TOKEN, free_port, start_api, start_serve, wait_ready
from tests.faults.conftest import scaled, store_agnostic

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SECURITY = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "SAMEORIGIN",
    "referrer-policy": "strict-origin-when-cross-origin",
}
"""What every answer carries, once each (``services/http/security.py``)."""
YEAR = 31_536_000


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@contextmanager
def running_api(url: str, **env: str) -> Iterator[str]:
    """A ``dateline api`` of our own on the store at ``url``: its base URL while it runs."""
    port = free_port()
    proc = start_api(url, port, **env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, base)
        yield base
    finally:
        proc.terminate()
        proc.wait(10)


@contextmanager
def running_serve(url: str | None, data_dir: Path, **env: str) -> Iterator[tuple[str, list[str]]]:
    """A ``dateline serve`` of our own: its base URL, and (once it has stopped) its output."""
    port = free_port()
    proc = start_serve(url, data_dir, port, **env)
    base = f"http://127.0.0.1:{port}"
    output: list[str] = []
    try:
        wait_ready(proc, base)
        yield base, output
    finally:
        output.append(stopped(proc))


def stopped(proc: subprocess.Popen[str]) -> str:
    """Stop ``proc`` with SIGTERM (as an operator does) and return all it wrote."""
    proc.terminate()
    out, _ = proc.communicate(timeout=20)
    return out


def create_token(base: str, role: str, name: str | None = None) -> dict[str, str]:
    body = {"role": role} | ({"name": name} if name else {})
    r = httpx.post(f"{base}/tokens", json=body, headers=ADMIN)
    assert r.status_code == 201, r.text
    made: dict[str, str] = r.json()
    return made


def store_contents(url: str) -> list[tuple[bytes, bytes]]:
    """Every key of the store's database at ``url`` and all it holds, as (name, contents)."""
    c = redis_sync.Redis.from_url(url)
    found: list[tuple[bytes, bytes]] = []
    try:
        for key in c.scan_iter(count=1000):
            kind = c.type(key).decode()
            parts: list[Any]
            if kind == "string":
                parts = [c.get(key)]
            elif kind == "hash":
                parts = [x for kv in c.hgetall(key).items() for x in kv]
            elif kind == "stream":
                parts = [x for _, fields in c.xrange(key) for kv in fields.items() for x in kv]
                parts += [str(c.xinfo_groups(key)).encode()]
            elif kind == "list":
                parts = c.lrange(key, 0, -1)
            elif kind == "set":
                parts = list(c.smembers(key))
            elif kind == "zset":
                parts = [m for m, _ in c.zrange(key, 0, -1, withscores=True)]
            else:
                parts = [c.dump(key)]
            found.append(
                (key, b"\n".join(p if isinstance(p, bytes) else str(p).encode() for p in parts))
            )
    finally:
        c.close()
    return found


def test_the_store_keeps_only_the_sha256_of_each_token_never_the_token(
    isolated_url: str, tmp_path: Path, figure: Callable[[str, str], None]
) -> None:
    """Tokens created, used for writes and audits, refused and revoked: no key name, value, hash
    field or stream entry holds a raw token; each live token's SHA-256 hex is what is kept."""
    count = scaled(12, 100)
    with running_serve(isolated_url, tmp_path / "serve") as (base, _):
        made = [create_token(base, "editor" if n % 2 else "auditor") for n in range(count)]
        story = f"t-{uuid.uuid4().hex[:16]}"
        editors = [m for m in made if m["role"] == "editor"]
        r = httpx.post(f"{base}/stories", json={"story": story, "title": "T"}, headers=ADMIN)
        assert r.status_code == 201, r.text
        for n, m in enumerate(editors):  # each writes with an idempotency key: a claim by token
            body = {"type": "entry.published", "data": {"body": f"<p>{n}</p>"}}
            headers = bearer(m["token"]) | {"Idempotency-Key": f"k-{n}"}
            r = httpx.post(f"{base}/stories/{story}/events", json=body, headers=headers)
            assert r.status_code == 201, r.text
        for m in made:
            if m["role"] == "auditor":
                r = httpx.get(f"{base}/stories/{story}/events", headers=bearer(m["token"]))
                assert r.status_code == 200, r.text
        wrong = f"{token_module.PREFIX}{uuid.uuid4().hex}"
        assert httpx.get(f"{base}/projection/parked", headers=bearer(wrong)).status_code == 401
        revoked = made[: count // 4]
        for m in revoked:
            assert httpx.delete(f"{base}/tokens/{m['name']}", headers=ADMIN).status_code == 204
        kept = store_contents(isolated_url)
    secrets = [m["token"] for m in made] + [wrong, ADMIN_TOKEN]
    leaking = [key for key, contents in kept for s in secrets if s.encode() in key + contents]
    assert leaking == []
    live = {hashlib.sha256(m["token"].encode()).hexdigest() for m in made[count // 4 :]}
    c = redis_sync.Redis.from_url(isolated_url)
    stored = {d.decode() for d in c.hkeys(keys.TOKENS)}
    c.close()
    assert stored == live
    figure(
        "tokens at rest",
        f"raw token found in 0 of {len(kept)} keys (names, values, hash fields, stream "
        f"entries) for {len(secrets)} secrets; {len(stored)} live tokens kept as SHA-256 hex only",
    )


@store_agnostic
def test_every_token_is_256_random_bits_from_secrets(
    api_url: str, figure: Callable[[str, str], None]
) -> None:
    """Each token the API creates decodes to 32 bytes (at least 128 bits are needed), all
    different, with ones and zeros balanced as random bits are; they come from ``secrets``."""
    count = scaled(40, 400)
    made = [create_token(api_url, "auditor")["token"] for _ in range(count)]
    raw = []
    for token in made:
        assert token.startswith(token_module.PREFIX)
        body = token.removeprefix(token_module.PREFIX)
        assert re.fullmatch(r"[A-Za-z0-9_-]+", body)
        raw.append(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    assert {len(r) for r in raw} == {token_module.TOKEN_BYTES}
    assert token_module.TOKEN_BYTES * 8 >= 128
    assert len(set(made)) == count
    bits = "".join(f"{byte:08b}" for r in raw for byte in r)
    ones = bits.count("1") / len(bits)
    assert 0.45 < ones < 0.55  # 10,240 bits in CI: a fair coin lands within 0.5 +- 0.05
    assert "secrets.token_urlsafe(TOKEN_BYTES)" in inspect.getsource(token_module.new_token)
    figure(
        "token entropy",
        f"{count} tokens: {token_module.TOKEN_BYTES * 8} bits each from secrets.token_urlsafe, "
        f"all distinct, ones {ones:.3f} of {len(bits)} bits",
    )


def test_the_bootstrap_token_is_compared_in_constant_time_on_its_digest(api_url: str) -> None:
    """The one comparison of a presented secret with a known one is ``hmac.compare_digest`` on
    SHA-256 digests; the bootstrap token works, and one a character off or a prefix is 401."""
    assert token_module.compare is hmac.compare_digest
    source = inspect.getsource(token_module.Tokens.resolve)
    assert "compare(digest, self._bootstrap)" in source
    assert "== self._bootstrap" not in source
    assert httpx.get(f"{api_url}/projection/parked", headers=ADMIN).status_code == 200
    near = [ADMIN_TOKEN[:-1] + ("x" if ADMIN_TOKEN[-1] != "x" else "y"), ADMIN_TOKEN[:-1], "x"]
    for guess in near:
        r = httpx.get(f"{api_url}/projection/parked", headers=bearer(guess))
        assert r.status_code == 401, guess


def test_a_revoked_token_is_refused_at_once_by_every_other_api_process(
    isolated_url: str, figure: Callable[[str, str], None]
) -> None:
    """Two API processes on one store: a token used on B (so B has it cached), revoked through
    A, is refused by B on the next request, well within a second, every cycle."""
    cycles = scaled(20, 200)
    first_refused = 0
    slowest = 0.0
    with running_api(isolated_url) as a, running_api(isolated_url) as b, httpx.Client() as c:
        for n in range(cycles):
            made = create_token(a, "auditor", f"rev-{n}-{uuid.uuid4().hex[:6]}")
            asked = bearer(made["token"])
            assert c.get(f"{b}/projection/parked", headers=asked).status_code == 200
            assert c.get(f"{b}/projection/parked", headers=asked).status_code == 200  # cached
            assert c.delete(f"{a}/tokens/{made['name']}", headers=ADMIN).status_code == 204
            revoked_at = time.monotonic()
            statuses = [c.get(f"{b}/projection/parked", headers=asked).status_code]
            while statuses[-1] != 401 and time.monotonic() - revoked_at < 1.0:
                statuses.append(c.get(f"{b}/projection/parked", headers=asked).status_code)
            seen = time.monotonic() - revoked_at
            assert statuses[-1] == 401, statuses
            assert set(statuses[:-1]) <= {200}
            first_refused += len(statuses) == 1
            slowest = max(slowest, seen)
            assert c.get(f"{a}/projection/parked", headers=asked).status_code == 401
    figure(
        "revocation",
        f"the very next request on the other process refused in {first_refused} of {cycles} "
        f"cycles; revocation seen by the other process after at most {slowest * 1000:.1f} ms",
    )


def raw_request(base: str, data: bytes) -> tuple[int, dict[str, list[str]]]:
    """Send ``data`` as it is and read the answer's status and headers (for a request uvicorn
    cannot parse, which no HTTP client will send)."""
    parts = urlsplit(base)
    with socket.create_connection((parts.hostname or "", parts.port or 80), timeout=5) as s:
        s.sendall(data)
        got = b""
        while b"\r\n\r\n" not in got:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    head = got.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    headers: dict[str, list[str]] = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return int(head[0].split()[1]), headers


def missing(headers: dict[str, list[str]], hsts: bool = False) -> list[str]:
    """The security headers absent, wrong or sent twice in ``headers`` (lower-case names)."""
    wanted = SECURITY | ({"strict-transport-security": f"max-age={YEAR}"} if hsts else {})
    wrong = [n for n, v in wanted.items() if headers.get(n) != [v]]
    if not hsts and "strict-transport-security" in headers:
        wrong.append("strict-transport-security (not configured)")
    return wrong


def listed(r: httpx.Response) -> dict[str, list[str]]:
    return {name: r.headers.get_list(name) for name in r.headers}


@store_agnostic
def test_every_answer_carries_the_security_headers(
    api_url: str, editor_token: str, auditor_token: str, figure: Callable[[str, str], None]
) -> None:
    """Every route family, each refusal (400, 401, 403, 404, 405, 413, 422), HEAD and 304, the
    fast paths and uvicorn's own 400: nosniff, SAMEORIGIN framing and the referrer policy, once
    each; pages also their policy with ``frame-ancestors``; no HSTS unless configured."""
    story = f"t-{uuid.uuid4().hex[:16]}"
    editor, auditor = bearer(editor_token), bearer(auditor_token)
    answers: list[tuple[str, int, dict[str, list[str]]]] = []
    with httpx.Client(base_url=api_url, timeout=15.0) as c:

        def ask(label: str, method: str, path: str, **kw: Any) -> httpx.Response:
            r = c.request(method, path, **kw)
            answers.append((label, r.status_code, listed(r)))
            return r

        event = {"type": "entry.published", "data": {"body": "<p>x</p>"}}
        assert (
            ask(
                "open", "POST", "/stories", json={"story": story, "title": "T"}, headers=editor
            ).status_code
            == 201
        )
        assert (
            ask(
                "write (direct)", "POST", f"/stories/{story}/events", json=event, headers=editor
            ).status_code
            == 201
        )
        ask("write no token (direct)", "POST", f"/stories/{story}/events", json=event)
        ask(
            "write bad json (direct)",
            "POST",
            f"/stories/{story}/events",
            content=b"{",
            headers=editor,
        )
        ask(
            "write unknown type (direct)",
            "POST",
            f"/stories/{story}/events",
            json={"type": "x", "data": {}},
            headers=editor,
        )
        ask(
            "write too large (direct)",
            "POST",
            f"/stories/{story}/events",
            content=b"x" * 300_000,
            headers=editor | {"Content-Type": "application/json"},
        )
        ask(
            "open too large",
            "POST",
            "/stories",
            content=b"x" * 300_000,
            headers=editor | {"Content-Type": "application/json"},
        )
        ask(
            "open as auditor",
            "POST",
            "/stories",
            json={"story": story, "title": "T"},
            headers=auditor,
        )
        ask("open exists", "POST", "/stories", json={"story": story, "title": "T"}, headers=editor)
        state = ask("state", "GET", f"/stories/{story}", params={"min_version": 2})
        assert state.status_code == 200, state.text
        fast = ask("state (fast)", "GET", f"/stories/{story}")
        ask("state HEAD (fast)", "HEAD", f"/stories/{story}")
        if "etag" in fast.headers:
            r = ask(
                "state 304 (fast)",
                "GET",
                f"/stories/{story}",
                headers={"If-None-Match": fast.headers["etag"]},
            )
            assert r.status_code == 304
        ask("state unknown", "GET", f"/stories/t-{uuid.uuid4().hex[:16]}")
        ask("state bad id", "GET", "/stories/NOT..AN..ID")
        ask("list", "GET", "/stories")
        ask("list HEAD", "HEAD", "/stories")
        page = ask("page", "GET", f"/live/{story}")
        assert page.status_code == 200
        ask("page HEAD", "HEAD", f"/live/{story}")
        r = ask(
            "page 304", "GET", f"/live/{story}", headers={"If-None-Match": page.headers["etag"]}
        )
        assert r.status_code == 304
        ask("page bad cursor", "GET", f"/live/{story}", params={"before": "abc"})
        ask("page unknown", "GET", f"/live/t-{uuid.uuid4().hex[:16]}")
        for src in sorted(set(re.findall(r'"(/static/[^"?]+)', page.text))):
            static = ask(f"static {src}", "GET", src)
            assert static.status_code == 200, src
            ask(f"static HEAD {src}", "HEAD", src)
            r = ask(
                f"static 304 {src}", "GET", src, headers={"If-None-Match": static.headers["etag"]}
            )
            assert r.status_code == 304
        ask("static unknown", "GET", "/static/nope.js")
        ask("audit events", "GET", f"/stories/{story}/events", headers=auditor)
        ask("audit no token", "GET", f"/stories/{story}/events")
        ask("audit wrong token", "GET", f"/stories/{story}/events", headers=bearer("dl_wrong"))
        ask("audit as editor", "GET", f"/stories/{story}/events", headers=editor)
        ask("replay", "GET", f"/stories/{story}/replay", params={"version": 1}, headers=auditor)
        ask("verify", "GET", f"/stories/{story}/verify", headers=auditor)
        ask("revisions unknown", "GET", f"/stories/{story}/entries/nope/revisions", headers=auditor)
        ask(
            "replay frozen page",
            "GET",
            f"/stories/{story}/replay",
            params={"version": 1, "format": "html"},
            headers=auditor,
        )
        made = ask("token create", "POST", "/tokens", json={"role": "auditor"}, headers=ADMIN)
        ask("token create as editor", "POST", "/tokens", json={"role": "auditor"}, headers=editor)
        ask("token create bad role", "POST", "/tokens", json={"role": "king"}, headers=ADMIN)
        ask("token revoke", "DELETE", f"/tokens/{made.json()['name']}", headers=ADMIN)
        ask("token revoke unknown", "DELETE", "/tokens/nobody-here", headers=ADMIN)
        ask("healthz", "GET", "/healthz")
        ask("healthz HEAD", "HEAD", "/healthz")
        ask("parked", "GET", "/projection/parked", headers=auditor)
        ask("retry not parked", "POST", f"/projection/parked/{story}/retry", headers=ADMIN)
        ask("metrics", "GET", "/metrics")
        ask("metrics HEAD", "HEAD", "/metrics")
        ask("openapi", "GET", "/openapi.json")
        ask("docs", "GET", "/docs")
        ask("no route", "GET", "/no/such/thing")
        ask("wrong method", "DELETE", "/healthz")
        ask("wrong method (events)", "PUT", f"/stories/{story}/events")
    status, headers = raw_request(api_url, b"NOT HTTP AT ALL\r\n\r\n")
    answers.append(("unparseable (uvicorn)", status, headers))
    assert status == 400
    short = [(label, status, gaps) for label, status, h in answers if (gaps := missing(h))]
    assert short == []
    pages = [
        (label, h)
        for label, _, h in answers
        if h.get("content-type", [""])[0].startswith("text/html") and "docs" not in label
    ]
    assert len(pages) >= 5
    for label, h in pages:
        [policy] = h["content-security-policy"]
        assert "frame-ancestors 'self'" in policy, label
    statuses = sorted({s for _, s, _ in answers})
    figure(
        "security headers",
        f"responses missing a security header 0 of {len(answers)} (statuses {statuses}, "
        f"HEAD, 304, fast paths, uvicorn's 400); pages without frame-ancestors 0 of {len(pages)}",
    )


@store_agnostic
def test_hsts_is_sent_on_every_answer_when_configured(isolated_url: str) -> None:
    """With ``DATELINE_HSTS_SECONDS`` set, every answer (a 200, a 404, a 401, uvicorn's 400)
    carries ``Strict-Transport-Security: max-age=N``; the shared server, without it, sends none."""
    with running_api(isolated_url, DATELINE_HSTS_SECONDS=str(YEAR)) as base:
        rows = [
            httpx.get(f"{base}/healthz"),
            httpx.get(f"{base}/no/such/thing"),
            httpx.get(f"{base}/projection/parked"),
            httpx.head(f"{base}/metrics"),
        ]
        assert [r.status_code for r in rows] == [200, 404, 401, 200]
        for r in rows:
            assert missing(listed(r), hsts=True) == []
        status, headers = raw_request(base, b"\x16\x03\x01 not http\r\n\r\n")
        assert status == 400
        assert missing(headers, hsts=True) == []


def with_user(url: str, user: str, password: str) -> str:
    """``url`` with a username and password in it."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{parts.netloc}"))


@store_agnostic
def test_no_token_or_secret_reaches_a_log_line(
    tmp_path: Path, isolated_url: str, figure: Callable[[str, str], None]
) -> None:
    """A full run of ``dateline serve`` (embedded Valkey): tokens created, used, refused, sent in
    bad requests and revoked, then a stop; no token, wrong token or the admin token is in its
    output, the Valkey log or the append-only file. Then a ``serve`` on a store URL with a
    password: the password is never printed (the URL is shown with ``***``)."""
    data = tmp_path / "data"
    secrets: list[str] = [ADMIN_TOKEN]
    with running_serve(None, data) as (base, output), httpx.Client(base_url=base) as c:
        editor = create_token(base, "editor")["token"]
        auditor = create_token(base, "auditor")["token"]
        doomed = create_token(base, "editor", "doomed")["token"]
        wrong = [f"{token_module.PREFIX}{uuid.uuid4().hex}{n}" for n in range(4)]
        secrets += [editor, auditor, doomed, *wrong]
        story = f"t-{uuid.uuid4().hex[:16]}"
        assert (
            c.post(
                "/stories", json={"story": story, "title": "T"}, headers=bearer(editor)
            ).status_code
            == 201
        )
        event = {"type": "entry.published", "data": {"body": "<p>x</p>"}}
        assert (
            c.post(
                f"/stories/{story}/events",
                json=event,
                headers=bearer(editor) | {"Idempotency-Key": "k"},
            ).status_code
            == 201
        )
        assert c.get(f"/stories/{story}/events", headers=bearer(auditor)).status_code == 200
        assert c.get(f"/stories/{story}/events", headers=bearer(wrong[0])).status_code == 401
        assert (
            c.post(f"/stories/{story}/events", json=event, headers=bearer(wrong[1])).status_code
            == 401
        )
        assert (
            c.get("/projection/parked", headers={"Authorization": f"Basic {wrong[2]}"}).status_code
            == 401
        )
        c.get(f"/stories/{editor}")  # a token where a story id goes
        c.get(f"/live/{story}", params={"before": auditor})
        c.get("/stories", params={"token": editor})
        c.post(
            f"/stories/{story}/events",
            content=f'{{"type": "{editor}", "data": '.encode(),
            headers=bearer(editor),
        )
        c.post(
            f"/stories/{story}/events", json={"type": editor, "data": {}}, headers=bearer(editor)
        )
        c.post(
            f"/stories/{story}/events",
            json=event,
            headers=bearer(editor) | {"Idempotency-Key": wrong[3] * 8},
        )
        c.post("/tokens", json={"role": "editor", "name": doomed}, headers=ADMIN)
        c.post("/tokens", json={"role": editor}, headers=ADMIN)
        c.get("/metrics", headers={"X-Api-Key": auditor})
        assert c.delete("/tokens/doomed", headers=ADMIN).status_code == 204
        assert (
            c.post(f"/stories/{story}/events", json=event, headers=bearer(doomed)).status_code
            == 401
        )
        raw_request(
            base, f"GET /stories HTTP/1.1\r\nAuthorization: Bearer {wrong[0]}\x00\r\n\r\n".encode()
        )
    lines = output[0].splitlines()
    assert any(line.startswith("ready") for line in lines), output[0]
    kept = {p: p.read_bytes() for p in data.rglob("*") if p.is_file() and p.name != "valkey.sock"}
    assert any(p.name == "valkey.log" for p in kept)
    assert any("appendonly" in str(p) for p in kept)
    in_output = [s for s in secrets if s in output[0]]
    in_files = [(p.name, s) for p, body in kept.items() for s in secrets if s.encode() in body]
    assert in_output == []
    assert in_files == []

    user, password = f"dl-{uuid.uuid4().hex[:8]}", f"pw-{uuid.uuid4().hex}"
    admin = redis_sync.Redis.from_url(isolated_url)
    admin.acl_setuser(
        user,
        enabled=True,
        passwords=[f"+{password}"],
        keys=["*"],
        channels=["*"],
        commands=["+@all"],
    )
    try:
        with running_serve(with_user(isolated_url, user, password), tmp_path / "other") as (_, out):
            pass
        said = out[0]
        assert "ready" in said
        assert password not in said
        assert f"{user}:***@" in said
        lines += said.splitlines()
    finally:
        admin.acl_deluser(user)
        admin.close()
    figure(
        "secrets in logs",
        f"secrets in log lines 0 of {len(lines)} (serve output, {len(secrets)} tokens); in the "
        f"Valkey log and append-only file 0 of {len(kept)} files; store password printed 0",
    )


METRIC_LINE = re.compile(r"^(?P<name>[a-zA-Z_:][\w:]*)(?:\{(?P<labels>[^}]*)\})? ")


async def test_metrics_name_no_story_and_no_token(
    api_url: str, http: httpx.AsyncClient, figure: Callable[[str, str], None]
) -> None:
    """``/metrics`` is open to anyone, so it must name nothing private: after a story is
    written, read and refused and a token made, used and refused, no story id, token, token
    hash or token name is in it, and its labels are only ``answer``, ``code`` and ``type``."""
    stories = [f"t-{uuid.uuid4().hex[:16]}" for _ in range(3)]
    name = f"mx-{uuid.uuid4().hex[:8]}"
    r = await http.post("/tokens", json={"role": "editor", "name": name})
    token = r.json()["token"]
    for story in stories[:2]:
        assert (
            await http.post("/stories", json={"story": story, "title": "T"}, headers=bearer(token))
        ).status_code == 201
        await http.post(
            f"/stories/{story}/events",
            json={"type": "entry.published", "data": {"body": "<p>x</p>"}},
            headers=bearer(token),
        )
        await http.get(f"/stories/{story}")
        await http.get(f"/live/{story}")
        await http.post(
            f"/stories/{story}/events", json={"type": "nope", "data": {}}, headers=bearer(token)
        )
    await http.get(f"/stories/{stories[2]}")  # unknown: refused
    await http.get(f"/live/{stories[2]}")
    await http.get("/projection/parked", headers=bearer(token + "x"))
    async with httpx.AsyncClient(base_url=api_url) as anyone:
        r = await anyone.get("/metrics")
    assert r.status_code == 200  # no token needed: so nothing in it may be private
    text = r.text
    private = [*stories, token, hashlib.sha256(token.encode()).hexdigest(), name, ADMIN_TOKEN]
    assert [p for p in private if p in text] == []
    labels: set[str] = set()
    for line in text.splitlines():
        match = METRIC_LINE.match(line)
        if match and match.group("labels"):
            labels |= {
                pair.split("=", 1)[0] for pair in re.findall(r'(\w+)="', match.group("labels"))
            }
    assert labels <= {"answer", "code", "type"}, labels
    await http.delete(f"/tokens/{name}")
    figure(
        "metrics privacy",
        f"story ids in /metrics 0 of {len(stories)}; token values, hashes or names 0; "
        f"label names {sorted(labels)}",
    )


async def test_the_gateways_handshake_answers_carry_the_security_headers(ws_url: str) -> None:
    """The websocket handshake's answers, accepted (101) or refused (403 Origin, 426 plain
    HTTP), carry the same security headers as every HTTP answer."""
    http_url = ws_url.replace("ws://", "http://", 1)
    upgrade = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    }
    async with httpx.AsyncClient(timeout=5) as plain:
        refused = await plain.get(http_url, headers={**upgrade, "Origin": "https://evil.example"})
        not_ws = await plain.get(http_url)
    async with connect(ws_url) as ws:
        assert ws.response is not None
        accepted = ws.response.headers
    answers = {
        101: accepted,
        refused.status_code: refused.headers,
        not_ws.status_code: not_ws.headers,
    }
    assert set(answers) == {101, 403, 426}
    for status, headers in answers.items():
        for name, value in security.ALWAYS:
            assert headers.get(name) == value, (status, name)
