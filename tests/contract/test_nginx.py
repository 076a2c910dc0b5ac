"""nginx as a caching reverse proxy in front of the running ``dateline serve``, as operators run it.

The config under test is the example in docs/operations.md ("Behind a CDN or nginx"), read from the
page itself: only its cache directory, its listen address and its upstream are swapped for this
machine's, so the page and this test cannot drift apart. Rules checked (CONTRACT.md second
edition, "Public reads at breaking-news scale"; docs/operations.md):
- a read within ``s-maxage`` of the one that filled the cache is a HIT with the same bytes, and
  keeps ``ETag``, ``Cache-Control``, ``Vary`` and ``Surrogate-Key``;
- after a publish, once ``s-maxage`` has passed, nginx serves the new version (stale while it
  revalidates in the background), and the version a reader gets never goes backwards;
- a cache never serves one story's bytes, or one coding's, for another;
- a reader who got a stale copy misses nothing: subscribing ``since`` its version gets every later
  change once, in order, up to the head.

The tests need Debian's ``nginx`` (``/usr/sbin/nginx``). Without it they are skipped with the
reason; under CI (``CI`` set) or with ``DATELINE_REQUIRE_NGINX=1`` its absence is a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import os
import pwd
import re
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect

from projections.changes import follow
from tests.conftest import ROOT, free_port

DOC = ROOT / "docs" / "operations.md"
FRESH = 1.0
"""``s-maxage`` of the session's ``dateline serve`` (``DATELINE_CACHE_SECONDS``' default)."""
CATCH_UP = 6.0
"""Seconds past ``s-maxage`` within which nginx must be serving a new version (generous: CI)."""
PATHS = ("/stories/{story}", "/live/{story}")


def find_nginx() -> str | None:
    """The nginx executable: on PATH, else Debian's ``/usr/sbin/nginx`` (not on a user's PATH)."""
    found = shutil.which("nginx")
    if found:
        return found
    return "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None


def doc_example() -> str:
    """The nginx example of docs/operations.md, "Behind a CDN or nginx", as the page shows it."""
    section = DOC.read_text().split("## Behind a CDN or nginx", 1)[1].split("\n## ", 1)[0]
    return section.split("```nginx\n", 1)[1].split("```", 1)[0]


def configured(example: str, api: str, port: int, cache: Path) -> str:
    """The example with this machine's cache dir, listen address and upstream in place of its own."""
    for old, new in {
        "/var/cache/nginx/dateline": str(cache),
        "listen 80;": f"listen 127.0.0.1:{port};",
        "http://127.0.0.1:8000": api,
    }.items():
        assert old in example, f"docs/operations.md's nginx example no longer has {old!r}"
        example = example.replace(old, new)
    return example


def nginx_conf(directory: Path, server: str) -> str:
    """A whole nginx.conf around ``server``: pid, logs and temp files all under ``directory``."""
    # Started by root, nginx's workers drop to "nobody", who cannot enter pytest's private tmp
    # dirs; keep them as the user running the tests (a non-root master ignores the directive).
    user = ""
    if os.geteuid() == 0:
        user = f"user {pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name};"
    temp = "\n".join(
        f"    {kind}_temp_path {directory / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""{user}
pid {directory / "nginx.pid"};
error_log {directory / "error.log"} info;
worker_processes 1;
events {{ worker_connections 512; }}
http {{
    access_log {directory / "access.log"};
{temp}
{server}
}}
"""


@dataclass(frozen=True)
class Proxy:
    """A running nginx in front of the API: its base URL and the directory it keeps its files in."""

    url: str
    directory: Path


def _wait_listening(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            text = log.read_text() if log.exists() else ""
            raise RuntimeError(f"nginx exited with {proc.returncode}:\n{text}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError("nginx did not start listening")


@pytest.fixture(scope="module")
def nginx(api_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    """Debian's nginx running the docs' example in front of the session's ``dateline serve``."""
    binary = find_nginx()
    if binary is None:
        reason = "nginx tests not run: no nginx found (install Debian's: apt-get install nginx)"
        if os.environ.get("CI") or os.environ.get("DATELINE_REQUIRE_NGINX") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    directory = tmp_path_factory.mktemp("nginx")
    port = free_port()
    conf = directory / "nginx.conf"
    server = configured(doc_example(), api_url, port, directory / "cache")
    conf.write_text(nginx_conf(directory, server))
    args = [binary, "-p", str(directory), "-e", str(directory / "error.log"), "-c", str(conf)]
    proc = subprocess.Popen(
        [*args, "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait_listening(proc, port, directory / "error.log")
        yield Proxy(f"http://127.0.0.1:{port}", directory)
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
async def cached(nginx: Proxy) -> AsyncIterator[httpx.AsyncClient]:
    """A reader's HTTP client, going through nginx."""
    async with httpx.AsyncClient(base_url=nginx.url, timeout=15.0) as c:
        yield c


@pytest.fixture
async def desk(api_url: str, editor_token: str) -> AsyncIterator[httpx.AsyncClient]:
    """An editor's HTTP client, straight to the API (writes never go through the cache)."""
    headers = {"Authorization": f"Bearer {editor_token}"}
    async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=15.0) as c:
        yield c


async def opened(desk: httpx.AsyncClient, story: str, entries: int = 1) -> int:
    """Open ``story`` with ``entries`` entries, wait until it is projected; its version."""
    r = await desk.post("/stories", json={"story": story, "title": f"Live: {story}"})
    assert r.status_code == 201, r.text
    version = 1
    for i in range(entries):
        version = await post(desk, story, "entry.published", entry_id=f"e{i}", body=body(story, i))
    await projected(desk, story, version)
    return version


def body(story: str, i: int) -> str:
    return f"<p>{story} update {i}: the coast road is shut.</p>"


async def post(desk: httpx.AsyncClient, story: str, event: str, /, **data: Any) -> int:
    """Append one event through the API; its version."""
    r = await desk.post(f"/stories/{story}/events", json={"type": event, "data": data})
    assert r.status_code == 201, r.text
    return int(r.json()["version"])


async def projected(desk: httpx.AsyncClient, story: str, version: int) -> dict[str, Any]:
    """The story straight from the API once the projection has reached ``version``."""
    r = await desk.get(f"/stories/{story}", params={"min_version": version})
    assert r.status_code == 200, r.text
    return dict(r.json())


@dataclass(frozen=True)
class Read:
    """One public read as a reader got it: what story and version it shows, and how it came."""

    story: str
    version: int
    etag: str
    cache: str
    response: httpx.Response


def shown(path: str, r: httpx.Response) -> tuple[str, int]:
    """The story and version a response shows: the JSON's fields, or the page's ``<html>`` hooks."""
    if path.startswith("/stories/"):
        state = r.json()
        return str(state["story"]), int(state["version"])
    html = re.search(r"<html[^>]*>", r.text)
    assert html is not None, r.text[:200]
    story = re.search(r'data-story="([^"]+)"', html.group(0))
    version = re.search(r'data-version="(\d+)"', html.group(0))
    assert story is not None, html.group(0)
    assert version is not None, html.group(0)
    return story.group(1), int(version.group(1))


async def read(client: httpx.AsyncClient, path: str, story: str, **headers: str) -> Read:
    """GET ``path`` for ``story``; a 200 whose ``ETag`` names the version the body shows."""
    r = await client.get(path.format(story=story), headers=headers)
    assert r.status_code == 200, r.text
    got, version = shown(path, r)
    etag = r.headers["etag"]
    assert re.fullmatch(rf'"{version}(-[^"]*)?"', etag), (etag, version)
    return Read(got, version, etag, r.headers.get("x-cache-status", ""), r)


@pytest.mark.parametrize("path", PATHS)
async def test_a_second_read_within_s_maxage_is_a_cache_hit_with_the_same_bytes(
    cached: httpx.AsyncClient, desk: httpx.AsyncClient, api_url: str, story_id: str, path: str
) -> None:
    """The read after the one that filled the cache is a HIT: same bytes, ETag, caching headers."""
    await opened(desk, story_id)
    host = {"Host": httpx.URL(str(cached.base_url)).netloc.decode()}  # the page names its URL
    async with httpx.AsyncClient(base_url=api_url, headers=host, timeout=15.0) as direct:
        origin = await read(direct, path, story_id)
    for _ in range(5):  # a machine too busy to read twice within s-maxage tries again
        started = time.monotonic()
        first = await read(cached, path, story_id)
        second = await read(cached, path, story_id)
        if time.monotonic() - started < FRESH * 0.8:
            break
    else:
        pytest.fail("could not make two reads within s-maxage of each other")
    assert first.cache in ("MISS", "HIT")
    assert second.cache == "HIT"
    assert second.response.content == first.response.content == origin.response.content
    assert second.etag == first.etag == origin.etag
    for name in ("content-encoding", "cache-control", "vary", "surrogate-key", "cache-tag"):
        assert second.response.headers.get(name) == origin.response.headers.get(name), name
    assert second.response.headers["cache-control"] == (
        "public, max-age=0, s-maxage=1, stale-while-revalidate=30"
    )
    assert "accept-encoding" in second.response.headers["vary"].lower()
    assert second.response.headers["surrogate-key"] == f"story-{story_id}"


@pytest.mark.parametrize("path", PATHS)
async def test_after_a_publish_nginx_serves_the_new_version_and_never_an_older_one(
    cached: httpx.AsyncClient, desk: httpx.AsyncClient, story_id: str, path: str
) -> None:
    """Publishes land behind a busy cache: it catches up after s-maxage, never going back."""
    head = await opened(desk, story_id)
    seen: list[Read] = [await read(cached, path, story_id)]

    async def reading(until: asyncio.Event) -> None:
        while not until.is_set():
            seen.append(await read(cached, path, story_id))
            await asyncio.sleep(0.05)

    done = asyncio.Event()
    readers = asyncio.gather(*(reading(done) for _ in range(3)))
    for i in range(1, 5):
        await asyncio.sleep(0.4)
        head = await post(desk, story_id, "entry.published", entry_id=f"n{i}", body=body("n", i))
    await projected(desk, story_id, head)
    published = time.monotonic()
    await asyncio.sleep(FRESH)
    while seen[-1].version < head and time.monotonic() - published < FRESH + CATCH_UP:  # noqa: ASYNC110 -- the readers are the ones reading: this only watches what they got
        await asyncio.sleep(0.1)
    done.set()
    await readers

    versions = [r.version for r in seen]
    assert versions[-1] == head, f"nginx still serves {versions[-1]}, the head is {head}"
    assert versions == sorted(versions), f"a reader went back a version: {versions}"
    assert {r.story for r in seen} == {story_id}
    assert {r.cache for r in seen} <= {"MISS", "HIT", "STALE", "UPDATING", "REVALIDATED", "EXPIRED"}
    assert {"STALE", "UPDATING"} & {r.cache for r in seen}, "nothing was served stale"


async def unchanged(desk: httpx.AsyncClient) -> float:
    """Public reads the API has answered 304 from the change tail's version (its metrics)."""
    r = await desk.get("/metrics")
    assert r.status_code == 200, r.text
    found = re.search(r'^dateline_public_reads_total\{answer="unchanged"\} (\S+)$', r.text, re.M)
    return float(found.group(1)) if found else 0.0


@pytest.mark.parametrize("path", PATHS)
async def test_an_unchanged_story_is_revalidated_with_a_304_after_s_maxage(
    cached: httpx.AsyncClient, desk: httpx.AsyncClient, story_id: str, path: str
) -> None:
    """Past s-maxage, nginx asks with If-None-Match; the API answers 304, nginx keeps its bytes."""
    await opened(desk, story_id)
    filled = await read(cached, path, story_id)
    before = await unchanged(desk)
    await asyncio.sleep(FRESH + 1.2)  # nginx counts freshness in whole seconds: 1 to 2 s
    later = [await read(cached, path, story_id)]
    deadline = time.monotonic() + CATCH_UP
    while later[-1].cache != "HIT" and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        later.append(await read(cached, path, story_id))
    assert later[0].cache in ("STALE", "REVALIDATED"), [r.cache for r in later]
    assert later[-1].cache in ("HIT", "REVALIDATED"), [r.cache for r in later]
    assert {r.response.content for r in later} == {filled.response.content}
    assert {r.etag for r in later} == {filled.etag}
    assert await unchanged(desk) > before


async def test_a_cache_never_serves_one_storys_bytes_or_codings_for_another(
    cached: httpx.AsyncClient, desk: httpx.AsyncClient, story_id: str
) -> None:
    """Two stories, both paths, three codings, interleaved with publishes: each read is its own."""
    stories = (f"{story_id}-a", f"{story_id}-b")
    heads = {s: await opened(desk, s, entries=2) for s in stories}
    # A coding the reader accepts, or none (a body under 1 KiB goes as it is).
    codings: dict[str, set[str | None]] = {
        "br": {"br", None},
        "gzip": {"gzip", None},
        "identity": {None},
        "gzip, br": {"br", "gzip", None},
    }
    for n in range(4):
        for accept, allowed in codings.items():
            for path in PATHS:
                for story in stories:
                    got = await read(cached, path, story, **{"Accept-Encoding": accept})
                    assert got.story == story
                    assert got.version <= heads[story]
                    assert got.response.headers.get("content-encoding") in allowed, accept
                    assert got.response.headers["surrogate-key"] == f"story-{story}"
                    other = stories[1 - stories.index(story)]
                    assert story in got.response.text
                    assert f"{other} update" not in got.response.text
        story = stories[n % 2]
        heads[story] = await post(
            desk, story, "entry.published", entry_id=f"x{n}", body=body(story, 10 + n)
        )
        await projected(desk, story, heads[story])


@pytest.mark.parametrize("path", PATHS)
async def test_a_reader_of_a_stale_copy_misses_nothing_subscribing_since_its_version(
    cached: httpx.AsyncClient, desk: httpx.AsyncClient, ws_url: str, story_id: str, path: str
) -> None:
    """Cache filled, six changes, then since=the cached version: each later change once, in order."""
    await opened(desk, story_id, entries=2)
    await read(cached, path, story_id)  # fills the cache
    head = await post(desk, story_id, "entry.published", entry_id="a", body=body("a", 1))
    await post(desk, story_id, "entry.edited", entry_id="e0", body=body(story_id, 100))
    await post(desk, story_id, "entry.corrected", entry_id="e1", body=body("c", 1), note="Fixed.")
    await post(desk, story_id, "entry.pinned", entry_id="a")
    await post(desk, story_id, "entry.retracted", entry_id="e0", note="Not confirmed.")
    head = await post(desk, story_id, "story.updated", title="Live: the coast road")
    stale = await read(cached, path, story_id)
    assert stale.version <= head

    frames: list[dict[str, Any]] = []
    async with connect(ws_url, max_size=None) as ws:
        await ws.send(orjson.dumps({"op": "subscribe", "story": story_id, "since": stale.version}))
        for i in range(3):  # and more while it is catching up
            head = await post(
                desk, story_id, "entry.published", entry_id=f"l{i}", body=body("l", i)
            )
        while not frames or frames[-1].get("version", 0) < head:
            frames.append(orjson.loads(await asyncio.wait_for(ws.recv(), 10.0)))
        await ws.send(orjson.dumps({"op": "ping"}))
        while (frame := orjson.loads(await asyncio.wait_for(ws.recv(), 10.0)))["type"] != "pong":
            frames.append(frame)

    assert [f["type"] for f in frames] == ["change"] * len(frames), frames
    assert [f["version"] for f in frames] == list(range(stale.version + 1, head + 1))
    fresh = await projected(desk, story_id, head)
    if path.startswith("/stories/"):
        state: dict[str, Any] = stale.response.json()
        for frame in frames:
            state = follow(state, frame)
        assert state == fresh
