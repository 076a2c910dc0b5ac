"""The page's script and stylesheet: named by content hash, cached for good."""

from __future__ import annotations

import httpx

from tests.services.reader.conftest import Page, live, opened


async def test_the_script_and_stylesheet_are_served_for_long_caching(
    http: httpx.AsyncClient, story_id: str
) -> None:
    """The page names its assets by content hash; those URLs are immutable."""
    await opened(http, story_id)
    page = Page((await live(http, story_id, 1)).text)
    [script] = [a["src"] for a, _ in page.scripts if a.get("src")]
    [style] = [a["href"] for a in page.find("link", rel="stylesheet")]
    for url, media in ((script, "text/javascript"), (style, "text/css")):
        assert url is not None
        r = await http.get(url)
        assert r.status_code == 200
        assert r.headers["content-type"].startswith(media)
        assert "immutable" in r.headers["cache-control"]


async def test_an_asset_asked_for_without_its_hash_is_revalidated(
    http: httpx.AsyncClient,
) -> None:
    """Without ``?v=<hash>`` (or with a stale one) it is no-cache, and its ETag gives a 304."""
    for url in ("/static/reader.js", "/static/reader.css?v=stale"):
        r = await http.get(url)
        assert r.status_code == 200
        assert r.headers["cache-control"] == "no-cache"
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
