"""The page's schema.org LiveBlogPosting JSON-LD."""

from __future__ import annotations

import re

import httpx

from tests.services.reader.conftest import Page, a_full_story, live, opened, post


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


async def test_a_corrected_update_carries_each_correction_as_a_correction_comment(
    http: httpx.AsyncClient, story_id: str
) -> None:
    """schema.org: a corrected ``BlogPosting`` has ``correction``, one ``CorrectionComment``
    (the note, when) per correction; an update never corrected has none."""
    await opened(http, story_id)
    await post(http, story_id, "entry.published", entry_id="a", body="<p>Ten dead.</p>")
    await post(http, story_id, "entry.published", entry_id="b", body="<p>Roads shut.</p>")
    v = await post(
        http, story_id, "entry.corrected", entry_id="a", body="<p>Twelve dead.</p>", note="Toll."
    )
    updates = Page((await live(http, story_id, v)).text).json_ld()["liveBlogUpdate"]
    by_id = {u["@id"].rsplit("#entry-", 1)[1]: u for u in updates}
    [comment] = by_id["a"]["correction"]
    assert comment["@type"] == "CorrectionComment"
    assert comment["text"] == "Toll."
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT.+Z", comment["datePublished"])
    assert "correction" not in by_id["b"]
