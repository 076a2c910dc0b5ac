"""What the page lets in: its Content-Security-Policy, rel on body links, text never markup."""

from __future__ import annotations

import base64
import hashlib
import re

import httpx

from tests.services.reader.conftest import Page, live, opened, post


async def test_the_page_is_html_under_a_strict_policy_that_allows_only_its_loader(
    http: httpx.AsyncClient, ws_url: str, story_id: str
) -> None:
    """200 text/html; one inline script, allowed by its hash, that adds reader.js by its digest;
    styles only our own; frames and sockets allow-listed; no nonce, so every reader at a
    version gets the same bytes and the same policy."""
    await opened(http, story_id)
    r = await live(http, story_id, 1)
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    policy = r.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    page = Page(r.text)
    inline = [(a, text) for a, text in page.scripts if a.get("type") != "application/ld+json"]
    [(attributes, loader)] = inline
    assert attributes == {}  # no src, no nonce: the loader is the page's only script
    digest = base64.b64encode(hashlib.sha256(loader.encode()).digest()).decode()
    assert directives["script-src"] == f"'sha256-{digest}' 'strict-dynamic' 'self'"
    assert directives["default-src"] == "'none'"
    assert directives["style-src"] == "'self'"
    assert directives["object-src"] == "'none'"
    assert directives["base-uri"] == "'none'"
    assert directives["form-action"] == "'none'"
    assert directives["frame-ancestors"] == "'self'"
    assert directives["connect-src"] == ws_url
    assert "https://www.youtube-nocookie.com" in directives["frame-src"].split()
    assert "*" not in directives["frame-src"]
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "nonce" not in r.text
    assert "nonce" not in policy
    [src] = re.findall(r's\.src="([^"]+)"', loader)
    [integrity] = re.findall(r's\.integrity="([^"]+)"', loader)
    script = await http.get(src)
    expected = base64.b64encode(hashlib.sha384(script.content).digest()).decode()
    assert integrity == f"sha384-{expected}"
    [style] = page.find("link", rel="stylesheet")
    css = await http.get(str(style["href"]))
    assert style["integrity"] == (
        f"sha384-{base64.b64encode(hashlib.sha384(css.content).digest()).decode()}"
    )
    again = await http.get(f"/live/{story_id}")
    assert again.content == r.content
    assert again.headers["content-security-policy"] == policy


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
