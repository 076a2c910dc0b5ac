"""What the page lets in: its Content-Security-Policy, rel on body links, text never markup."""

from __future__ import annotations

import httpx

from tests.services.reader.conftest import POLICY, Page, live, opened, post


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
