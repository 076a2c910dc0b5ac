"""The reader page as the server renders it: HTML, policy, hooks, JSON-LD (no browser needed)."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest

from services.reader.page import player_url

POLICY = re.compile(r"script-src 'nonce-([A-Za-z0-9_-]{16,})'")


class Page(HTMLParser):
    """The parsed page: each element's tag and attributes, scripts' text, and all text."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.text: list[str] = []
        self._script: dict[str, str | None] | None = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))
        if tag == "script":
            self._script = dict(attrs)

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            self.scripts.append((self._script, data))
            self._script = None
        else:
            self.text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._script is not None:
            self.scripts.append((self._script, ""))
            self._script = None

    def find(self, tag: str, **wanted: str) -> list[dict[str, str | None]]:
        """Elements with this tag whose attributes include ``wanted`` (``class_`` for class)."""
        return [
            attrs
            for name, attrs in self.elements
            if name == tag and all(_has(attrs, k, v) for k, v in wanted.items())
        ]

    def entries(self) -> list[dict[str, str | None]]:
        return self.find("article", class_="entry")

    def json_ld(self) -> Any:
        [(_, text)] = [(a, t) for a, t in self.scripts if a.get("type") == "application/ld+json"]
        return json.loads(text)


def _has(attrs: dict[str, str | None], key: str, value: str) -> bool:
    """Whether an element's attribute ``key`` is ``value`` (for ``class``: one of its classes)."""
    name = key.rstrip("_").replace("_", "-")
    if name not in attrs:
        return False
    have = attrs[name] or ""
    return value in have.split() if name == "class" else have == value


async def opened(http: httpx.AsyncClient, story: str, **extra: Any) -> None:
    body = {"story": story, "title": "Storm Darragh: live", **extra}
    r = await http.post("/stories", json=body)
    assert r.status_code == 201, r.text


async def post(http: httpx.AsyncClient, story: str, event: str, /, **data: Any) -> int:
    r = await http.post(f"/stories/{story}/events", json={"type": event, "data": data})
    assert r.status_code == 201, r.text
    return int(r.json()["version"])


async def live(http: httpx.AsyncClient, story: str, version: int, **params: Any) -> httpx.Response:
    """The reader page once the projection has reached ``version``."""
    r = await http.get(f"/stories/{story}", params={"min_version": version})
    assert r.status_code == 200, r.text
    return await http.get(f"/live/{story}", params=params)


async def a_full_story(http: httpx.AsyncClient, story: str) -> int:
    """Entries of every kind: key event, corrected, retracted, pinned, with embeds."""
    await opened(http, story, summary="Red warnings across the west.")
    await post(
        http,
        story,
        "entry.published",
        entry_id="warning",
        headline="Red warning issued",
        key_event=True,
        time_label="0610 GMT",
        body='<p>A <strong>red warning</strong>, <a href="https://example.org/w">details</a>.</p>',
    )
    await post(http, story, "entry.published", entry_id="ferries", body="<p>Ferries off.</p>")
    await post(http, story, "entry.published", entry_id="power", body="<p>200,000 homes.</p>")
    await post(
        http,
        story,
        "entry.corrected",
        entry_id="power",
        body="<p>180,000 homes.</p>",
        note="An earlier version said 200,000.",
    )
    await post(http, story, "entry.retracted", entry_id="ferries", note="Not verified.")
    await post(
        http,
        story,
        "embed.attached",
        entry_id="power",
        kind="image",
        url="https://images.example.org/pylon.jpg",
        alt="A fallen pylon",
    )
    await post(
        http,
        story,
        "embed.attached",
        entry_id="power",
        kind="video",
        url="https://www.youtube.com/watch?v=dQw4w9WgXcQ",
    )
    await post(
        http,
        story,
        "embed.attached",
        entry_id="power",
        kind="social",
        url="https://bsky.app/profile/example.org/post/3k",
    )
    await post(
        http,
        story,
        "embed.attached",
        entry_id="power",
        kind="link",
        url="https://example.org/report",
        caption="The grid operator's report",
    )
    return await post(http, story, "entry.pinned", entry_id="power")


async def test_the_page_is_html_under_a_strict_policy_whose_nonce_is_on_its_script(
    http: httpx.AsyncClient, ws_url: str, story_id: str
) -> None:
    """200 text/html; scripts and styles only by a fresh nonce; frames and sockets allow-listed."""
    await opened(http, story_id)
    r = await live(http, story_id, 1)
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    policy = r.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    nonce = POLICY.search(policy)
    assert nonce is not None
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == f"'nonce-{nonce[1]}'"
    assert directives["style-src"] == f"'nonce-{nonce[1]}'"
    assert directives["object-src"] == "'none'"
    assert directives["base-uri"] == "'none'"
    assert directives["form-action"] == "'none'"
    assert directives["frame-ancestors"] == "'self'"
    assert directives["connect-src"] == ws_url
    assert "https://www.youtube-nocookie.com" in directives["frame-src"].split()
    assert "*" not in directives["frame-src"]
    assert r.headers["x-content-type-options"] == "nosniff"
    page = Page(r.text)
    scripts = [a for a, _ in page.scripts if a.get("src")]
    assert [s["nonce"] for s in scripts] == [nonce[1]]
    assert all(a.get("nonce") == nonce[1] for a, _ in page.scripts)
    assert page.find("link", rel="stylesheet", nonce=nonce[1])
    again = await http.get(f"/live/{story_id}")
    assert POLICY.search(again.headers["content-security-policy"]) != nonce


async def test_the_root_carries_the_story_its_version_and_the_gateway(
    http: httpx.AsyncClient, ws_url: str, story_id: str
) -> None:
    """``<html data-story data-version data-ws>``: the script subscribes since that version."""
    await opened(http, story_id)
    v = await post(http, story_id, "entry.published", body="<p>One.</p>")
    page = Page((await live(http, story_id, v)).text)
    [root] = page.find("html")
    assert root["data-story"] == story_id
    assert root["data-version"] == str(v)
    assert root["data-ws"] == ws_url


async def test_entries_are_rendered_newest_first_with_the_pinned_one_on_top_once(
    http: httpx.AsyncClient, story_id: str
) -> None:
    """The pinned entry leads (once); the rest follow newest first, with their hook classes."""
    v = await a_full_story(http, story_id)
    page = Page((await live(http, story_id, v)).text)
    entries = page.entries()
    assert [e["data-entry-id"] for e in entries] == ["power", "ferries", "warning"]
    classes = {e["data-entry-id"]: set((e["class"] or "").split()) for e in entries}
    assert classes == {
        "power": {"entry", "pinned"},
        "ferries": {"entry", "retracted"},
        "warning": {"entry", "key-event"},
    }
    assert page.find("ol", id="key-events")
    assert "Red warning issued" in page.text
    assert page.find("button", id="new-updates", hidden="")


async def test_corrections_and_tombstones_are_in_the_html_with_their_notes_and_times(
    http: httpx.AsyncClient, story_id: str
) -> None:
    """A correction shows its note and time; a retraction its note and never its body."""
    v = await a_full_story(http, story_id)
    r = await live(http, story_id, v)
    text = "".join(Page(r.text).text)
    assert re.search(r"Correction \(\d\d:\d\d UTC\): An earlier version said 200,000\.", text)
    assert re.search(r"Retracted \(\d\d:\d\d UTC\): Not verified\.", text)
    assert "Ferries off." not in r.text
    assert '<p class="correction">' in r.text
    assert re.search(
        r'<time datetime="\d{4}-\d\d-\d\dT[^"]+Z" title="[^"]+">\d\d:\d\d UTC</time>', r.text
    )


async def test_embeds_are_rendered_safely(http: httpx.AsyncClient, story_id: str) -> None:
    """Images lazy with alt; players click-to-load with no iframe; social and links link out."""
    v = await a_full_story(http, story_id)
    r = await live(http, story_id, v)
    page = Page(r.text)
    [image] = page.find("img", src="https://images.example.org/pylon.jpg")
    assert image["alt"] == "A fallen pylon"
    assert image["loading"] == "lazy"
    [load] = page.find("button", class_="embed-load")
    assert load["data-player"] == "https://www.youtube-nocookie.com/embed/dQw4w9WgXcQ"
    assert "<iframe" not in r.text
    out = page.find("a", class_="embed-out")
    assert {a["href"] for a in out} == {
        "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
        "https://bsky.app/profile/example.org/post/3k",
        "https://example.org/report",
    }
    assert all(a["rel"] == "noopener nofollow ugc" for a in out)


async def test_links_in_bodies_get_rel_noopener_nofollow_ugc(
    http: httpx.AsyncClient, story_id: str
) -> None:
    """Every link in an entry body is rendered with ``rel="noopener nofollow ugc"``."""
    await opened(http, story_id)
    v = await post(
        http,
        story_id,
        "entry.published",
        body='<p><a href="https://example.org/a" title="x &gt; y">a</a> <a href="mailto:desk@example.org">b</a></p>',
    )
    page = Page((await live(http, story_id, v)).text)
    links = [
        a
        for a in page.find("a")
        if a.get("href") in ("https://example.org/a", "mailto:desk@example.org")
    ]
    assert len(links) == 2
    assert [a["rel"] for a in links] == ["noopener nofollow ugc"] * 2
    assert links[0]["title"] == "x > y"


async def test_headlines_titles_and_notes_are_text_never_markup(
    http: httpx.AsyncClient, story_id: str
) -> None:
    """A ``<b>`` typed into a headline, title or note shows as those characters."""
    await opened(http, story_id, summary="<i>sum</i>")
    await post(http, story_id, "story.updated", title="<b>Title</b> & co")
    v = await post(
        http,
        story_id,
        "entry.published",
        entry_id="e",
        headline="<b>Breaking</b>",
        time_label="<script>x</script>",
        body="<p>Body</p>",
    )
    v = await post(
        http, story_id, "entry.corrected", entry_id="e", body="<p>B</p>", note="<em>n</em>"
    )
    r = await live(http, story_id, v)
    assert "<b>Breaking</b>" not in r.text
    assert '<h2 class="headline">&lt;b&gt;Breaking&lt;/b&gt;</h2>' in r.text
    assert "&lt;b&gt;Title&lt;/b&gt; &amp; co" in r.text
    assert "<script>x</script>" not in r.text
    assert "&lt;em&gt;n&lt;/em&gt;" in r.text
    assert "<i>sum</i>" not in r.text


async def test_json_ld_is_a_live_blog_posting_of_the_readable_entries(
    http: httpx.AsyncClient, story_id: str
) -> None:
    """schema.org ``LiveBlogPosting`` with a ``BlogPosting`` per entry not retracted."""
    v = await a_full_story(http, story_id)
    data = Page((await live(http, story_id, v)).text).json_ld()
    assert data["@context"] == "https://schema.org"
    assert data["@type"] == "LiveBlogPosting"
    assert data["headline"] == "Storm Darragh: live"
    assert data["description"] == "Red warnings across the west."
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT.+Z", data["coverageStartTime"])
    updates = data["liveBlogUpdate"]
    assert [u["@type"] for u in updates] == ["BlogPosting", "BlogPosting"]
    assert [u["articleBody"] for u in updates] == ["180,000 homes.", "A red warning, details."]
    assert updates[1]["headline"] == "Red warning issued"
    assert all(u["datePublished"] and u["dateModified"] for u in updates)


async def test_json_ld_cannot_close_its_script_element(
    http: httpx.AsyncClient, story_id: str
) -> None:
    """A title holding ``</script>`` stays inside the JSON-LD and parses back unchanged."""
    title = "</script><script>alert(1)</script><!--"
    await opened(http, story_id)
    v = await post(http, story_id, "story.updated", title=title)
    r = await live(http, story_id, v)
    block = r.text.split('<script type="application/ld+json"', 1)[1].split("</script>", 1)[0]
    assert "<" not in block.split(">", 1)[1]
    assert Page(r.text).json_ld()["headline"] == title


async def test_an_unknown_story_is_a_404_page(http: httpx.AsyncClient) -> None:
    """Unknown or impossible story ids answer 404 with an HTML page under the same policy."""
    for story in ("no-such-story-here", "Not_An_Id"):
        r = await http.get(f"/live/{story}")
        assert r.status_code == 404
        assert r.headers["content-type"] == "text/html; charset=utf-8"
        assert "default-src 'none'" in r.headers["content-security-policy"]
        assert "No such live blog" in r.text


async def test_older_entries_are_paged_by_before(http: httpx.AsyncClient, story_id: str) -> None:
    """Fifty entries a page; "Older updates" leads on with ``before``; a bad cursor is 400."""
    await opened(http, story_id)
    v = 1
    for i in range(53):
        v = await post(http, story_id, "entry.published", entry_id=f"e{i}", body=f"<p>{i}</p>")
    page = Page((await live(http, story_id, v)).text)
    assert len(page.entries()) == 50
    [older] = page.find("a", id="older")
    assert older["href"] is not None
    assert older["href"].startswith(f"/live/{story_id}?before=")
    second = await http.get(older["href"])
    assert second.status_code == 200
    rest = Page(second.text)
    assert [e["data-entry-id"] for e in rest.entries()] == ["e2", "e1", "e0"]
    assert rest.find("html")[0]["data-paged"] is not None
    assert not rest.find("a", id="older")
    assert (await http.get(f"/live/{story_id}?before=x")).status_code == 400


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
    assert (await http.get("/static/nothing.js")).status_code == 404


@pytest.mark.parametrize(
    ("kind", "url", "player"),
    [
        (
            "video",
            "https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=5",
            "https://www.youtube-nocookie.com/embed/dQw4w9WgXcQ",
        ),
        (
            "video",
            "https://youtu.be/dQw4w9WgXcQ",
            "https://www.youtube-nocookie.com/embed/dQw4w9WgXcQ",
        ),
        (
            "video",
            "https://m.youtube.com/shorts/dQw4w9WgXcQ",
            "https://www.youtube-nocookie.com/embed/dQw4w9WgXcQ",
        ),
        ("video", "https://www.youtube.com/channel/UC123", None),
        ("video", "https://www.youtube.com/watch?v=short", None),
        ("video", "https://vimeo.com/123456789", "https://player.vimeo.com/video/123456789?dnt=1"),
        (
            "video",
            "https://www.dailymotion.com/video/x8abc12",
            "https://www.dailymotion.com/embed/video/x8abc12",
        ),
        ("map", "https://datawrapper.dwcdn.net/AbC12/3/", "https://datawrapper.dwcdn.net/AbC12/3/"),
        (
            "map",
            "https://www.openstreetmap.org/export/embed.html?bbox=1,2,3,4",
            "https://www.openstreetmap.org/export/embed.html?bbox=1,2,3,4",
        ),
        ("map", "https://www.google.com/maps/place/Bristol", None),
        ("social", "https://x.com/someone/status/1", None),
        ("image", "https://www.youtube.com/watch?v=dQw4w9WgXcQ", None),
    ],
)
def test_click_to_load_embeds_become_their_providers_players(
    kind: str, url: str, player: str | None
) -> None:
    """Videos and maps map to the player the policy frames; the rest only link out."""
    assert player_url(kind, url) == player
