"""Public reads under load: ``dateline serve`` beside a bare ASGI app serving the same bytes.

What users run: one fresh embedded Valkey, ``python -m services serve --redis URL --http-port P
--ws-port Q`` (the supervisor and its api, projector and gateway workers) with
``DATELINE_ADMIN_TOKEN``; one story of 200 entries published through the API
(``POST /stories``, then ``POST /stories/{story}/events``), waited for until ``GET
/stories/{story}`` shows its head version. Then, once, the exact bytes and headers of ``GET
/live/{story}`` (the reader page) and ``GET /stories/{story}`` (the state's first page) are saved,
in the coding a browser asks for (``Accept-Encoding: br, gzip``: brotli) and in identity, with
the 304 each answers to its own ETag.

The floor (``python -m bench.http_servers static PORT``): a plain ASGI callable on uvicorn with
httptools and uvloop, one process, no framework, that sends those saved answers as they are
(ETag, Cache-Control, Vary, Content-Encoding and the rest), brotli when ``br`` is in
``Accept-Encoding``, 304 when ``If-None-Match`` names the ETag. For information only, Debian's
nginx (``/usr/sbin/nginx``; the row is skipped with a line when it is absent), one worker, serving
the same bodies as static files (the brotli file when ``br`` is accepted) with the same headers
fixed by ``add_header``, its own ETag (mtime and size) and its own 304s.

The load is ``wrk`` (``bench/get.lua``; one thread, 32 connections, the request built once) for
four requests: ``/live`` 200 (br), ``/stories`` 200 (br), and each with ``If-None-Match`` its
current ETag (304). Before loading, one probe per (request, server) checks the status and, for
ours and the floor, that the bytes and headers are the saved ones. The servers take turns (never
two under load at once) in interleaved rounds, the order flipped each round; requests/s is the
median round, p50/p99 the median of the rounds'.

Targets (bench/floors.py): ours >= 0.7x the floor's requests/s, for each of the two 200s
(``reads.ok``) and each of the two 304s (``reads.not_modified``): one check per request, not one
per kind, so a slow reader page cannot hide behind a fast state read.

    .venv/bin/python -m bench.reads [--quick] [--fsync everysec] [--connections N]
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path

import httpx
import redis as redis_sync

from bench.common import (
    PUBLISH,
    ROOT,
    TOKEN,
    Check,
    Children,
    Options,
    checks_table,
    finish,
    fmt,
    free_port,
    machine_line,
    main_wrapper,
    median,
    parse_options,
    process_cpu,
    say,
    table,
    valkey,
    wait_http,
    workdir,
)
from bench.floors import READS_NOT_MODIFIED, READS_OK

STORY = "reads-night"
ENTRIES = 200
BROWSER = "br, gzip"
"""The ``Accept-Encoding`` of the loaded requests: what a browser sends over plain HTTP."""
NGINX = Path("/usr/sbin/nginx")
WRK_HINT = "wrk is not on PATH: apt-get install -y wrk"
UNSAVED = frozenset(
    {"date", "server", "content-length", "connection", "keep-alive", "transfer-encoding"}
)
"""Headers not saved: uvicorn writes Date and Server itself (for ours and the floor alike), the
length is the body's, the rest are the connection's."""

Headers = list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class Read:
    """One loaded request: which saved answer, and whether it carries the current ETag."""

    label: str
    path: str
    conditional: bool

    @property
    def status(self) -> int:
        return 304 if self.conditional else 200


@dataclass(slots=True)
class Saved:
    """One path's answers as ``dateline serve`` gave them: each coding's headers and body, the 304."""

    path: str
    etag: str
    forms: dict[str, tuple[Headers, bytes]]
    not_modified: Headers

    def header(self, name: str) -> str | None:
        for key, value in self.forms["identity"][0]:
            if key.lower() == name:
                return value
        return None


@dataclass(slots=True)
class Server:
    name: str
    key: str
    port: int
    pid: int = 0
    etags: dict[str, str] = field(default_factory=dict)
    """The ETag this server gives each path's brotli form (nginx's are its own)."""
    rounds: dict[str, list[dict[str, float]]] = field(default_factory=dict)

    def median(self, read: Read, key: str) -> float:
        return median([r[key] for r in self.rounds.get(read.label, [])])

    def total(self, read: Read, key: str) -> int:
        return int(sum(r[key] for r in self.rounds.get(read.label, [])))


# -- saving the answers -------------------------------------------------------------------------


def fetch(port: int, path: str, headers: dict[str, str]) -> tuple[int, Headers, bytes]:
    """One GET with exactly these headers (and Host); the raw status, headers and body bytes."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers=headers)
        answer = connection.getresponse()
        return answer.status, answer.getheaders(), answer.read()
    finally:
        connection.close()


def kept(headers: Headers) -> Headers:
    return [(k, v) for k, v in headers if k.lower() not in UNSAVED]


def value(headers: Headers, name: str) -> str | None:
    return next((v for k, v in headers if k.lower() == name), None)


def save(port: int, path: str) -> Saved:
    """The answers of ``path`` in brotli, identity, and the 304 for its ETag."""
    forms: dict[str, tuple[Headers, bytes]] = {}
    for name, accept in (("br", BROWSER), ("identity", "identity")):
        status, headers, body = fetch(port, path, {"Accept-Encoding": accept})
        if status != 200:
            raise RuntimeError(f"GET {path} ({accept}): {status} {body[:300]!r}")
        forms[name] = (kept(headers), body)
    coding = value(forms["br"][0], "content-encoding")
    if coding != "br":
        raise RuntimeError(f"GET {path} with Accept-Encoding {BROWSER!r} came as {coding!r}")
    etag = value(forms["identity"][0], "etag")
    if etag is None or etag != value(forms["br"][0], "etag"):
        raise RuntimeError(f"GET {path}: no ETag, or one per coding")
    status, headers, _ = fetch(port, path, {"Accept-Encoding": BROWSER, "If-None-Match": etag})
    if status != 304:
        raise RuntimeError(f"GET {path} with If-None-Match {etag}: {status}, not 304")
    return Saved(path, etag, forms, kept(headers))


def write_spec(saved: Sequence[Saved], root: Path) -> Path:
    """The floor's answers (``bench.http_servers.static_app``): a JSON map and one file per body."""
    spec = {}
    for n, answer in enumerate(saved):
        forms = {}
        for name, (headers, body) in answer.forms.items():
            file = root / f"answer-{n}.{name}"
            file.write_bytes(body)
            forms[name] = {"headers": headers, "body": str(file)}
        spec[answer.path] = {
            "etag": answer.etag,
            "not_modified": answer.not_modified,
            "forms": forms,
        }
    out = root / "answers.json"
    out.write_text(json.dumps(spec, indent=1))
    return out


# -- nginx, for information ---------------------------------------------------------------------

NGINX_OWN = frozenset({"etag", "last-modified", "content-type", "content-encoding"})
"""Headers nginx writes itself: its ETag, Last-Modified from the file's mtime (set to ours),
Content-Type from ``default_type``, Content-Encoding from the map on ``Accept-Encoding``."""


def quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def nginx_conf(saved: Sequence[Saved], root: Path, port: int) -> Path:
    """A config serving each saved answer as a static file (``.br`` beside it), in ``root``."""
    www = root / "www"
    locations = []
    for answer in saved:
        file = www / answer.path.lstrip("/")
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(answer.forms["identity"][1])
        Path(f"{file}.br").write_bytes(answer.forms["br"][1])
        modified = answer.header("last-modified")
        if modified is not None:
            stamp = parsedate_to_datetime(modified).timestamp()
            for written in (file, Path(f"{file}.br")):
                os.utime(written, (stamp, stamp))
        lines = [f"location = {answer.path} {{", "    types { }"]
        lines.append(f"    default_type {quoted(answer.header('content-type') or 'text/plain')};")
        lines.append("    add_header Content-Encoding $reads_coding;")
        for name, text in answer.forms["identity"][0]:
            if name.lower() in NGINX_OWN:
                continue
            if "$" in text:
                say(f"nginx: {name} of {answer.path} left out (a '$' would be a variable)")
                continue
            lines.append(f"    add_header {name} {quoted(text)};")
        lines += ["    try_files $uri$reads_suffix =404;", "}"]
        locations.append("\n".join("        " + line for line in lines))
    for path in (root, *www.rglob("*"), www):  # nginx's worker may run as nobody
        path.chmod(0o755 if path.is_dir() else 0o644)
    temp = "\n".join(
        f"    {kind}_temp_path {root / ('nginx-' + kind)};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = f"""worker_processes 1;
pid {root / "nginx.pid"};
error_log {root / "nginx-error.log"} warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
{temp}
    sendfile on;
    tcp_nodelay on;
    keepalive_requests 1000000;
    max_ranges 0;
    etag on;
    map $http_accept_encoding $reads_suffix {{ default ""; "~br" ".br"; }}
    map $http_accept_encoding $reads_coding {{ default ""; "~br" "br"; }}
    server {{
        listen 127.0.0.1:{port};
        root {www};
        location = /healthz {{ default_type application/json; return 200 '{{"ok":true}}'; }}
{chr(10).join(locations)}
    }}
}}
"""
    out = root / "nginx.conf"
    out.write_text(conf)
    return out


# -- load ---------------------------------------------------------------------------------------


def tree_cpu(root: int) -> float:
    """Seconds of CPU of a process and all its descendants (``serve``'s workers, nginx's), /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        cpu = process_cpu(pid)
        total += 0.0 if math.isnan(cpu) else cpu
        todo.extend(children.get(pid, ()))
    return total


def wrk_get(server: Server, read: Read, connections: int, seconds: float) -> dict[str, float]:
    """One wrk run of ``read`` against ``server`` (one thread: the other core runs the server)."""
    env = {
        **os.environ,
        "BENCH_PATH": read.path,
        "BENCH_ACCEPT_ENCODING": BROWSER,
        "BENCH_IF_NONE_MATCH": server.etags[read.path] if read.conditional else "",
    }
    argv = [
        "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
        "-s", str(ROOT / "bench" / "get.lua"), f"http://127.0.0.1:{server.port}",
    ]  # fmt: skip
    done = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    for line in done.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            raw = json.loads(line.removeprefix("BENCH_JSON "))
            requests = max(raw["requests"], 1)
            return {
                "requests": raw["requests"],
                "rps": raw["requests"] / (raw["duration_us"] / 1e6),
                "bytes": raw["bytes"] / requests,
                "p50": raw["p50_us"] / 1000,
                "p99": raw["p99_us"] / 1000,
                "errors": raw["non2xx"] + raw["errors"],
            }
    raise RuntimeError(f"wrk gave no result:\n{done.stdout}\n{done.stderr}")


def probe(server: Server, read: Read, answer: Saved, exact: bool) -> None:
    """One request as wrk sends it: the status, and (``exact``) the saved bytes and headers."""
    headers = {"Accept-Encoding": BROWSER}
    if read.conditional:
        headers["If-None-Match"] = server.etags[read.path]
    status, got, body = fetch(server.port, read.path, headers)
    wrong = []
    if status != read.status:
        wrong.append(f"status {status}")
    if not read.conditional and body != answer.forms["br"][1]:
        wrong.append(f"a body of {len(body)} bytes, not the saved {len(answer.forms['br'][1])}")
    if exact:
        expected = answer.not_modified if read.conditional else answer.forms["br"][0]
        if sorted((k.lower(), v) for k, v in kept(got)) != sorted(
            (k.lower(), v) for k, v in expected
        ):
            wrong.append(f"headers {kept(got)}, not {expected}")
    if wrong:
        message = f"{server.name}, {read.label}: " + "; ".join(wrong)
        if exact:
            raise RuntimeError(message)
        say(f"note: {message}")


# -- the bench ----------------------------------------------------------------------------------


def publish_story(port: int) -> int:
    """Open the story and publish ``ENTRIES`` entries through the API; its head version."""
    url = f"http://127.0.0.1:{port}"
    with httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
    ) as http:
        answer = http.post("/stories", json={"story": STORY, "title": "The breaking-news night"})
        if answer.status_code != 201:
            raise RuntimeError(f"opening {STORY}: {answer.status_code} {answer.text}")
        version = int(answer.json()["version"])
        for n in range(ENTRIES):
            data = {**PUBLISH, "headline": f"{PUBLISH['headline']} ({n + 1})"}
            answer = http.post(
                f"/stories/{STORY}/events", json={"type": "entry.published", "data": data}
            )
            if answer.status_code != 201:
                raise RuntimeError(f"entry {n}: {answer.status_code} {answer.text}")
            version = int(answer.json()["version"])
    return version


def wait_projected(port: int, version: int, timeout: float = 60.0) -> None:
    """Poll ``GET /stories/{story}`` until the projection shows ``version``."""
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        status, _, body = fetch(port, f"/stories/{STORY}", {"Accept-Encoding": "identity"})
        if status == 200:
            seen = json.loads(body)["version"]
            if seen >= version:
                return
        time.sleep(0.05)
    raise RuntimeError(f"the projection showed version {seen}, not {version}, in {timeout:g} s")


READS = (
    Read("/live 200 (br)", f"/live/{STORY}", False),
    Read("/stories 200 (br)", f"/stories/{STORY}", False),
    Read("/live 304", f"/live/{STORY}", True),
    Read("/stories 304", f"/stories/{STORY}", True),
)


def run(options: Options) -> list[Check]:
    rounds, seconds, warm = (1, 1.0, 1.0) if options.quick else (3, 5.0, 2.0)
    connections = options.extra.connections or 32
    if not shutil.which("wrk"):
        raise SystemExit(WRK_HINT)
    ours = Server("dateline serve", "serve", free_port())
    floor = Server("floor: uvicorn", "floor", free_port())
    servers = [ours, floor]
    if NGINX.exists():
        servers.append(Server("nginx (info)", "nginx", free_port()))
    else:
        say(f"{NGINX} is absent: no nginx row (Debian: apt-get install -y nginx)")

    with valkey(options.fsync) as url, workdir() as tmp, Children() as children:
        env = {"DATELINE_ADMIN_TOKEN": TOKEN}
        log = tmp / "serve.log"
        argv = [
            sys.executable, "-m", "services", "serve", "--redis", url, "--host", "127.0.0.1",
            "--http-port", str(ours.port), "--ws-port", str(free_port()),
        ]  # fmt: skip
        proc = children.start(ours.name, argv, env, log)
        ours.pid = proc.pid
        wait_http(proc, f"http://127.0.0.1:{ours.port}/healthz", log)
        head = publish_story(ours.port)
        wait_projected(ours.port, head)
        saved = {read.path: save(ours.port, read.path) for read in READS}
        answers = list(saved.values())

        spec = write_spec(answers, tmp)
        log = tmp / "floor.log"
        argv = [sys.executable, "-m", "bench.http_servers", "static", str(floor.port)]
        proc = children.start(floor.name, argv, {"BENCH_STATIC": str(spec)}, log)
        floor.pid = proc.pid
        wait_http(proc, f"http://127.0.0.1:{floor.port}/healthz", log)
        if len(servers) > 2:
            nginx = servers[2]
            conf = nginx_conf(answers, tmp, nginx.port)
            log = tmp / "nginx.log"
            argv = [str(NGINX), "-p", str(tmp), "-c", str(conf), "-e", str(tmp / "nginx-error.log")]
            proc = children.start(nginx.name, [*argv, "-g", "daemon off;"], None, log)
            nginx.pid = proc.pid
            wait_http(proc, f"http://127.0.0.1:{nginx.port}/healthz", log)

        for server in servers:
            for answer in answers:
                if server.key == "nginx":  # its ETags are its own
                    _, headers, _ = fetch(server.port, answer.path, {"Accept-Encoding": BROWSER})
                    server.etags[answer.path] = value(headers, "etag") or ""
                else:
                    server.etags[answer.path] = answer.etag
            for read in READS:
                probe(server, read, saved[read.path], exact=server.key != "nginx")

        say(machine_line(options))
        sizes = ", ".join(
            f"{a.path}: {len(a.forms['identity'][1]):,} bytes, {len(a.forms['br'][1]):,} in brotli"
            f" (ETag {a.etag})"
            for a in answers
        )
        say(f"story of {ENTRIES} entries at version {head}; {sizes}")
        say(
            f"load: wrk, 1 thread, {connections} connections, Accept-Encoding {BROWSER!r}; "
            f"{rounds} round(s) of {seconds:g} s per (request, server), interleaved, after "
            f"{warm:g} s of warm-up each; probes matched the saved bytes and headers"
        )
        store = redis_sync.Redis.from_url(url)

        def valkey_seconds() -> float:
            info = store.info("cpu")
            return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

        for server in servers:
            wrk_get(server, READS[0], connections, warm)
        for n in range(rounds):
            for read in READS:
                for server in servers if n % 2 == 0 else servers[::-1]:
                    cpu, theirs = tree_cpu(server.pid), valkey_seconds()
                    result = wrk_get(server, read, connections, seconds)
                    done = max(result["requests"], 1)
                    result["cpu_us"] = (tree_cpu(server.pid) - cpu) / done * 1e6
                    result["valkey_us"] = (valkey_seconds() - theirs) / done * 1e6
                    server.rounds.setdefault(read.label, []).append(result)
        store.close()

    rows = []
    for read in READS:
        base = floor.median(read, "rps")
        for s in servers:
            rows.append(
                [
                    read.label,
                    s.name,
                    fmt(s.median(read, "rps")),
                    fmt(s.median(read, "p50"), 2),
                    fmt(s.median(read, "p99"), 2),
                    fmt(s.median(read, "rps") / base, 2) if base else "-",
                    fmt(s.median(read, "bytes")),
                    fmt(s.median(read, "cpu_us"), 1),
                    fmt(s.median(read, "valkey_us"), 1),
                    fmt(s.total(read, "errors")),
                ]
            )
    say(
        "floor: uvicorn = a bare ASGI app on uvicorn + httptools + uvloop sending the saved "
        "answers; nginx (info) = Debian's nginx, one worker, the same bodies as static files; "
        "bytes: per answer, headers included; server us/req: CPU of the server's whole process "
        "tree; Valkey us/req: the store's CPU (a read that went to the store shows here); "
        "errors: 4xx/5xx and socket errors"
    )
    table(
        f"public reads of a {ENTRIES}-entry story, {connections} connections",
        [
            "request",
            "server",
            "requests/s",
            "p50 ms",
            "p99 ms",
            "x floor",
            "bytes",
            "server us/req",
            "Valkey us/req",
            "errors",
        ],
        rows,
    )
    for read in READS:
        for s in servers:
            if s.total(read, "errors"):
                say(f"WARNING: {s.name}, {read.label}: {s.total(read, 'errors')} errors or 4xx/5xx")
    checks = [
        Check(
            READS_NOT_MODIFIED if read.conditional else READS_OK,
            f"GET {read.path.replace(STORY, '{story}')} {read.label.split(' ', 1)[1]} requests/s",
            ours.median(read, "rps"),
            floor.median(read, "rps"),
            "req/s",
        )
        for read in READS
    ]
    checks_table("targets", checks)
    if len(servers) > 2:
        nginx = servers[2]
        say(
            "for information: nginx at "
            + ", ".join(
                f"{fmt(nginx.median(r, 'rps') / floor.median(r, 'rps'), 2)}x the floor ({r.label})"
                for r in READS
            )
        )
    return checks


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, help="keep-alive connections (32)")
    options = parse_options(parser.description or "", argv, parser)
    return main_wrapper(lambda: finish(options, run(options)))


if __name__ == "__main__":
    sys.exit(main())
