"""GET /live/{story}/feed.atom: the story's Atom feed, in which edits, corrections and
retractions travel; read by feedparser (what feed readers run) and by lxml (strict XML, and the
RFC 6721 tombstones feedparser does not report)."""

from __future__ import annotations

from typing import Any

import feedparser
import httpx
from lxml import etree

from tests.services.reader.conftest import Page, live, opened, post

ATOM = "{http://www.w3.org/2005/Atom}"
AT = "{http://purl.org/atompub/tombstones/1.0}"


async def _feed(http: httpx.AsyncClient, story: str, version: int) -> httpx.Response:
    await live(http, story, version)  # the projection has reached ``version``
    r = await http.get(f"/live/{story}/feed.atom")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/atom+xml; charset=utf-8"
    return r


def _parsed(r: httpx.Response) -> Any:
    parsed = feedparser.parse(r.content)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    return parsed


async def test_the_feed_carries_entries_edits_corrections_and_retractions(
    http: httpx.AsyncClient, story_id: str
) -> None:
    await opened(http, story_id, summary="Red warnings across the west.")
    await post(http, story_id, "entry.published", entry_id="warn", body="<p>Red warning.</p>")
    v = await post(http, story_id, "entry.published", entry_id="ferry", body="<p>Ferries off.</p>")
    first = _parsed(await _feed(http, story_id, v))
    assert first.feed.title == "Storm Darragh: live"
    assert first.feed.subtitle == "Red warnings across the west."
    assert first.feed.link.endswith(f"/live/{story_id}")
    by_id = {e.id: e for e in first.entries}
    assert set(by_id) == {f"urn:dateline:{story_id}:warn", f"urn:dateline:{story_id}:ferry"}
    assert first.entries[0].id.endswith(":ferry")  # newest first, as the page
    warn_before = by_id[f"urn:dateline:{story_id}:warn"]
    assert "Red warning." in warn_before.content[0].value
    assert warn_before.link.endswith(f"/live/{story_id}#entry-warn")

    await post(
        http,
        story_id,
        "entry.corrected",
        entry_id="warn",
        body="<p>Amber warning.</p>",
        note="The warning is amber, not red.",
    )
    v = await post(http, story_id, "entry.retracted", entry_id="ferry", note="Ferries run.")
    r = await _feed(http, story_id, v)
    after = _parsed(r)
    [warn] = after.entries  # the retracted entry is a tombstone, not an entry
    assert warn.id == warn_before.id  # the same entry, for any feed reader
    assert warn.updated > warn_before.updated  # RFC 3339, to the microsecond
    assert warn.published == warn_before.published
    content = warn.content[0].value
    assert "Amber warning." in content
    assert "Red warning." not in content
    assert "The warning is amber, not red." in content
    assert "Ferries off." not in r.text  # a retracted text is never in the feed
    tree = etree.fromstring(r.content)
    [gone] = tree.findall(f"{AT}deleted-entry")
    assert gone.get("ref") == f"urn:dateline:{story_id}:ferry"
    assert gone.get("when")
    assert gone.findtext(f"{AT}comment") == "Ferries run."
    assert tree.findtext(f"{ATOM}updated") == after.feed.updated


async def test_the_feed_is_conditional_and_linked_from_the_page(
    http: httpx.AsyncClient, story_id: str
) -> None:
    await opened(http, story_id)
    v = await post(http, story_id, "entry.published", entry_id="e1", body="<p>One.</p>")
    r = await _feed(http, story_id, v)
    etag = r.headers["etag"]
    assert "s-maxage=" in r.headers["cache-control"]
    assert r.headers["last-modified"]
    again = await http.get(f"/live/{story_id}/feed.atom", headers={"If-None-Match": etag})
    assert again.status_code == 304
    v = await post(http, story_id, "entry.edited", entry_id="e1", body="<p>One, edited.</p>")
    await live(http, story_id, v)
    moved = await http.get(f"/live/{story_id}/feed.atom", headers={"If-None-Match": etag})
    assert moved.status_code == 200
    assert moved.headers["etag"] != etag
    assert "One, edited." in _parsed(moved).entries[0].content[0].value
    page = Page((await http.get(f"/live/{story_id}")).text)
    [link] = page.find("link", rel="alternate", type="application/atom+xml")
    assert link["href"] == f"/live/{story_id}/feed.atom"


async def test_an_unknown_story_has_no_feed(http: httpx.AsyncClient) -> None:
    r = await http.get("/live/no-such-story-feed/feed.atom")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "unknown_story"
    assert (await http.get("/live/Not_An_Id/feed.atom")).status_code in (400, 404)
