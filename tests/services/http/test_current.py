"""Public reads at breaking-news scale, on the running server (CONTRACT second edition, "Public
reads at breaking-news scale"): caching headers, HEAD, compression, the same bytes for every
reader, 304s and ready pages without a store round trip, and never an answer older than asked."""

from __future__ import annotations

import asyncio
import gzip
from email.utils import parsedate_to_datetime
from pathlib import Path

import brotli
import httpx
import pytest
import redis.asyncio as redis

from services.store.embedded import EmbeddedValkey
from tests.conftest import ADMIN_TOKEN, free_port, start_serve, wait_ready
from tests.services.http.conftest import open_story, publish, state

CACHE_CONTROL = "public, max-age=0, s-maxage=1, stale-while-revalidate=30"

PATHS = ("/stories/{story}", "/live/{story}")


async def story_reads(client: redis.Redis) -> int:
    """How many page reads of story state the store has served (each reads the entry order)."""
    stats = await client.info("commandstats")
    return int(stats.get("cmdstat_zrevrangebyscore", {}).get("calls", 0))


@pytest.mark.parametrize("path", PATHS)
async def test_a_public_read_is_ready_for_a_cdn(
    http: httpx.AsyncClient, story_id: str, path: str
) -> None:
    """Strong ETag, Last-Modified (the story's updated_at), Vary, a short public s-maxage with
    stale-while-revalidate, and the story's purge tags; the 304 carries the same caching."""
    await open_story(http, story_id)
    envelope = await publish(http, story_id)
    current = await state(http, story_id, envelope["version"])
    r = await http.get(path.format(story=story_id))
    assert r.status_code == 200
    assert r.headers["cache-control"] == CACHE_CONTROL
    assert "private" not in r.headers["cache-control"]
    assert r.headers["vary"] == "Accept-Encoding"
    assert r.headers["surrogate-key"] == f"story-{story_id}"
    assert r.headers["cache-tag"] == f"story-{story_id}"
    etag = r.headers["etag"]
    assert etag.startswith(f'"{envelope["version"]}')
    assert not etag.startswith("W/")
    modified = parsedate_to_datetime(r.headers["last-modified"])
    assert modified.isoformat().replace("+00:00", "") == current["updated_at"][:19]
    again = await http.get(path.format(story=story_id), headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    assert again.headers["cache-control"] == CACHE_CONTROL
    assert again.headers["surrogate-key"] == f"story-{story_id}"
    since = await http.get(
        path.format(story=story_id), headers={"If-Modified-Since": r.headers["last-modified"]}
    )
    assert since.status_code == 304


async def test_every_public_get_answers_head_with_the_same_status_and_headers(
    http: httpx.AsyncClient, story_id: str
) -> None:
    await open_story(http, story_id)
    for path in (
        "/stories",
        f"/stories/{story_id}",
        f"/live/{story_id}",
        "/healthz",
        "/metrics",
        "/live/no-such-story",
        "/stories/no-such-story",
    ):
        names = ("content-type", "etag", "cache-control", "content-length")
        for _ in range(20):  # the shared server's story list may move between the two
            got = await http.get(path)
            head = await http.head(path)
            if all(head.headers.get(n) == got.headers.get(n) for n in names):
                break
            await asyncio.sleep(0.1)
        assert head.status_code == got.status_code, path
        assert head.content == b"", path
        for name in names:
            assert head.headers.get(name) == got.headers.get(name), (path, name)


@pytest.mark.parametrize("path", PATHS)
async def test_bodies_come_compressed_brotli_first_then_gzip(
    api_url: str, story_id: str, http: httpx.AsyncClient, path: str
) -> None:
    """With br or gzip accepted a body of 1 KiB or more is compressed; each decodes to the same
    bytes as the identity body (compared raw, without the client's own decoding)."""
    await open_story(http, story_id)
    for n in range(20):
        envelope = await publish(http, story_id, body=f"<p>Update {n}: {'words ' * 20}</p>")
    await state(http, story_id, envelope["version"])
    url = api_url + path.format(story=story_id)
    async with httpx.AsyncClient() as raw:

        async def fetch(accept: str) -> tuple[str | None, bytes]:
            request = raw.build_request("GET", url, headers={"Accept-Encoding": accept})
            response = await raw.send(request, stream=True)
            sent = b"".join([chunk async for chunk in response.aiter_raw()])
            await response.aclose()
            return response.headers.get("content-encoding"), sent

        (none, plain), (br, brotli_body), (gz, gzip_body) = [
            await fetch(accept) for accept in ("identity", "gzip, deflate, br", "gzip")
        ]
    assert none is None
    assert len(plain) >= 1024
    assert br == "br"
    assert brotli.decompress(brotli_body) == plain
    assert gz == "gzip"
    assert gzip.decompress(gzip_body) == plain
    assert len(brotli_body) < len(plain) / 3


async def test_every_reader_at_a_version_gets_the_same_bytes_and_another_story_never(
    http: httpx.AsyncClient, story_id: str
) -> None:
    await open_story(http, story_id)
    other = f"{story_id}-b"
    await open_story(http, other, title="Another story")
    pages = await asyncio.gather(*(http.get(f"/live/{story_id}") for _ in range(20)))
    assert len({p.content for p in pages}) == 1
    assert f'data-story="{story_id}"' in pages[0].text
    theirs = await http.get(f"/live/{other}")
    assert f'data-story="{other}"' in theirs.text
    assert "Another story" in theirs.text
    assert "Another story" not in pages[0].text


async def test_current_reads_are_answered_without_asking_the_store(
    http: httpx.AsyncClient, client: redis.Redis, story_id: str
) -> None:
    """Once a story is followed, its 304s and its ready pages cost the store nothing: 200
    requests of each kind, at most one build per HTTP process."""
    await open_story(http, story_id)
    envelope = await publish(http, story_id)
    await state(http, story_id, envelope["version"])
    for path in (f"/stories/{story_id}", f"/live/{story_id}"):
        first = await http.get(path)
        etag = first.headers["etag"]
        before = await story_reads(client)
        for _ in range(100):
            assert (await http.get(path, headers={"If-None-Match": etag})).status_code == 304
            assert (await http.get(path)).content == first.content
        assert await story_reads(client) - before <= 2, path  # a build per HTTP process at most


async def test_a_new_version_is_served_at_once_and_never_older_than_min_version(
    http: httpx.AsyncClient, story_id: str
) -> None:
    """Each 201 then ``min_version`` gets that version or later, however warm the cache; and
    without ``min_version`` a reader sees the new version within the tail's reach."""
    await open_story(http, story_id)
    for _ in range(30):
        envelope = await publish(http, story_id)
        version = envelope["version"]
        r = await http.get(f"/stories/{story_id}", params={"min_version": version})
        assert r.status_code == 200
        assert r.json()["version"] >= version
        assert r.headers["etag"] == f'"{r.json()["version"]}"'
    for _ in range(100):
        r = await http.get(f"/live/{story_id}")
        if f'data-version="{version}"' in r.text:
            break
        await asyncio.sleep(0.01)
    else:
        pytest.fail("the reader page never reached the last version")


async def test_during_a_store_outage_public_reads_are_503_never_a_kept_answer(
    tmp_path: Path, story_id: str
) -> None:
    """Kill the store under a running serve: a page or state request, conditional or not, is
    503 with Retry-After (a version the tail can no longer vouch for is not current), and once
    the store is back the same requests are answered as before."""
    valkey = EmbeddedValkey(tmp_path / "store", fsync="everysec")
    url = valkey.start()
    port = free_port()
    proc = start_serve(url, tmp_path / "serve", port)
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    try:
        wait_ready(proc, base)
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=10) as http:
            await open_story(http, story_id)
            version = (await publish(http, story_id))["version"]
            await state(http, story_id, version)
            etags = {}
            for path in PATHS:
                r = await http.get(path.format(story=story_id))
                assert r.status_code == 200
                etags[path] = r.headers["etag"]
            assert valkey.process is not None
            valkey.process.kill()
            valkey.process.wait()
            await asyncio.sleep(0.5)  # the change tail has seen it fail
            for path in PATHS:
                for conditional in ({}, {"If-None-Match": etags[path]}):
                    r = await http.get(path.format(story=story_id), headers=conditional)
                    assert r.status_code == 503, (path, conditional, r.status_code)
                    assert int(r.headers["retry-after"]) >= 1
            valkey.stop()
            valkey.start()
            deadline = asyncio.get_running_loop().time() + 15
            for path in PATHS:
                while True:
                    r = await http.get(
                        path.format(story=story_id), headers={"If-None-Match": etags[path]}
                    )
                    if r.status_code == 304:
                        break
                    assert asyncio.get_running_loop().time() < deadline, r.status_code
                    await asyncio.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(20)
        if proc.stdout:
            proc.stdout.close()
        valkey.stop()


@pytest.mark.parametrize("path", PATHS)
async def test_the_fast_path_answers_exactly_as_the_route_does(
    http: httpx.AsyncClient, story_id: str, path: str
) -> None:
    """A read with no query is answered before the framework (``services.http.app.front``); the
    same read through the route (a query it ignores, the same page) gets the same status,
    headers and bytes, 200 and 304, HEAD too."""
    await open_story(http, story_id)
    envelope = await publish(http, story_id)
    await state(http, story_id, envelope["version"])
    url = path.format(story=story_id)
    await http.get(url)  # built and kept
    for method in ("GET", "HEAD"):
        for headers in ({"Accept-Encoding": "br"}, {"Accept-Encoding": "identity"}):
            fast = await http.request(method, url, headers=headers)
            routed = await http.request(method, url, params={"utm_source": "x"}, headers=headers)
            etag = fast.headers["etag"]
            fast_304 = await http.request(method, url, headers={"If-None-Match": etag, **headers})
            routed_304 = await http.request(
                method, url, params={"utm_source": "x"}, headers={"If-None-Match": etag, **headers}
            )
            for a, b in ((fast, routed), (fast_304, routed_304)):
                assert a.status_code == b.status_code
                assert a.content == b.content
                assert {k: v for k, v in a.headers.items() if k != "date"} == {
                    k: v for k, v in b.headers.items() if k != "date"
                }
            assert fast.status_code == 200
            assert fast_304.status_code == 304
