"""The page's script and stylesheet: named by content hash, cached for good."""

from __future__ import annotations

import re

import httpx

from tests.services.reader.conftest import Page, live, opened


async def test_the_script_and_stylesheet_are_served_for_long_caching(
    http: httpx.AsyncClient, story_id: str
) -> None:
    """The page names its assets by content hash (in the file name, so a CDN that ignores query
    strings keeps builds apart); those URLs are immutable, compressed, and answer HEAD."""
    await opened(http, story_id)
    page = Page((await live(http, story_id, 1)).text)
    [loader] = [t for a, t in page.scripts if a.get("type") != "application/ld+json"]
    [script] = re.findall(r's\.src="([^"]+)"', loader)
    [style] = [a["href"] for a in page.find("link", rel="stylesheet")]
    for url, media in ((script, "text/javascript"), (style, "text/css")):
        assert url is not None
        assert re.fullmatch(r"/static/reader\.[0-9a-f]{16}\.(js|css)", url)
        r = await http.get(url, headers={"Accept-Encoding": "br"})
        assert r.status_code == 200
        assert r.headers["content-type"].startswith(media)
        assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert r.headers["content-encoding"] == "br"
        head = await http.head(url, headers={"Accept-Encoding": "br"})
        assert head.status_code == 200
        assert head.content == b""
        assert head.headers["content-length"] == r.headers["content-length"]


async def test_an_asset_asked_for_without_its_hash_is_revalidated(
    http: httpx.AsyncClient,
) -> None:
    """Without its hash (or with a stale ``?v=``) it is no-cache, and its ETag gives a 304."""
    for url in ("/static/reader.js", "/static/reader.css?v=stale"):
        r = await http.get(url)
        assert r.status_code == 200
        assert r.headers["cache-control"] == "public, no-cache"
        again = await http.get(url, headers={"If-None-Match": r.headers["etag"]})
        assert again.status_code == 304
        assert again.content == b""


async def test_a_static_file_that_is_not_there_is_the_contracts_not_found(
    http: httpx.AsyncClient,
) -> None:
    """Any other name under /static is 404 not_found, as JSON like every unknown path."""
    r = await http.get("/static/nothing.js")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
