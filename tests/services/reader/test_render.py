"""The page as rendered: its root's hooks, entries in order, corrections and tombstones."""

from __future__ import annotations

import re

import httpx

from tests.services.reader.conftest import Page, a_full_story, live, opened, post


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


async def test_a_corrected_entry_has_a_closed_what_changed_disclosure_of_its_corrections(
    http: httpx.AsyncClient, story_id: str
) -> None:
    """Server-rendered: each correction's note and time, and its words removed and added;
    a retracted entry has no disclosure (its text is never shown again)."""
    await opened(http, story_id)
    await post(http, story_id, "entry.published", entry_id="a", body="<p>Ten dead in Homs.</p>")
    await post(
        http,
        story_id,
        "entry.corrected",
        entry_id="a",
        body="<p>Twelve dead in Homs.</p>",
        note="Toll.",
    )
    await post(http, story_id, "entry.published", entry_id="b", body="<p>Secret.</p>")
    await post(http, story_id, "entry.corrected", entry_id="b", body="<p>Other.</p>", note="N.")
    v = await post(http, story_id, "entry.retracted", entry_id="b", note="Withdrawn.")
    html = (await live(http, story_id, v)).text
    page = Page(html)
    [details] = page.find("details", class_="correction-history")
    assert details.get("open") is None
    start = html.index('class="correction-history"')
    block = html[start : html.index("</details>", start)]
    assert "<summary>What changed</summary>" in block
    assert "<del>Ten</del><ins>Twelve</ins> dead in Homs." in block
    assert "Toll." in block
    assert "Secret." not in html
