"""A reader page a cache served late catches up in the browser: every change once, in order.

docs/operations.md ("Behind a CDN or nginx"): a page a cache serves late still catches up, because
its script subscribes ``since`` the version the page was rendered at. Here the browser is handed
the exact bytes and headers the server sent at version V, 30 changes later, as a cache serving
within ``stale-while-revalidate`` would; its script, static files and websocket are the real
server's.
"""

from __future__ import annotations

import re

import httpx
from playwright.async_api import Route, expect

from tests.contract.browser.conftest import Reader
from tests.contract.browser.test_live_page import (
    CANONICAL,
    entry_ids,
    opened,
    post,
    rendered_version,
    state,
    still_the_same_document,
    update,
)

CHANGES = 30
"""Changes published between the render a cache kept and the reader opening it."""
KEPT = ("content-type", "content-security-policy", "etag", "cache-control", "last-modified", "vary")
"""The headers a cache keeps with the page (the policy matters: it lets the page's script run)."""


async def test_a_page_served_thirty_changes_late_ends_showing_each_change_once(
    http: httpx.AsyncClient, api_url: str, reader: Reader, story_id: str
) -> None:
    """The page of version V, opened after 30 more changes, shows all of them, each once, in order."""
    await opened(http, story_id)
    v = 1
    for i in range(3):
        v = await post(http, story_id, "entry.published", entry_id=f"old{i}", body=update(i))
    await state(http, story_id, v)
    url = f"{api_url}/live/{story_id}"
    kept = await http.get(url, headers={"Accept-Encoding": "identity", "Authorization": ""})
    assert kept.status_code == 200
    assert re.search(rf'<html[^>]* data-version="{v}"', kept.text), kept.text[:300]

    new = [f"new{i}" for i in range(CHANGES - 2)]
    for i, entry in enumerate(new):
        head = await post(http, story_id, "entry.published", entry_id=entry, body=update(100 + i))
    await post(http, story_id, "entry.edited", entry_id="old0", body=update(200))
    head = await post(
        http, story_id, "entry.corrected", entry_id="new3", body=update(203), note="Fixed the road."
    )
    assert head == v + CHANGES
    await state(http, story_id, head)

    served: list[str] = []

    async def stale(route: Route) -> None:
        served.append(route.request.url)
        headers = {k: val for k, val in kept.headers.items() if k in KEPT}
        await route.fulfill(status=200, headers=headers, body=kept.content)

    page = reader.page
    # A page Playwright fulfils has no address, so Chromium counts it as public and asks before it
    # reaches a loopback gateway; the page a real cache serves comes from where the site is.
    await page.context.grant_permissions(["local-network-access"], origin=api_url)
    await page.route(url, stale)
    r = await page.goto(url)
    assert r is not None
    assert r.status == 200
    assert served == [url]
    await page.evaluate("() => { window.__sameDocument = true; }")  # a reload would drop it
    await page.wait_for_function(
        "(v) => window.__dateline && window.__dateline.version === v", arg=head, timeout=10000
    )

    ids = await entry_ids(page)
    assert len(ids) == len(set(ids)), f"an entry shows twice: {ids}"
    assert ids == [*reversed(new), "old2", "old1", "old0"]
    await expect(page.locator('[data-entry-id="new3"] .correction')).to_have_count(1)
    await expect(page.locator('[data-entry-id="new3"] .correction')).to_contain_text(
        "Fixed the road."
    )
    await expect(page.locator('[data-entry-id="old0"] .body')).to_contain_text("Update 200")
    assert await rendered_version(page) == head
    assert await still_the_same_document(page)

    fresh = await page.context.new_page()
    await fresh.goto(url)
    assert await rendered_version(fresh) == head
    assert await entry_ids(fresh) == ids
    parts = ["#pinned", "#entries", "nav.key-events", "#story-title", "#story-summary"]
    assert await page.evaluate(CANONICAL, parts) == await fresh.evaluate(CANONICAL, parts)
    await fresh.close()
