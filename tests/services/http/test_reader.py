"""GET /live/{story}: a page for people, also when the story does not exist or the cursor is bad."""

from __future__ import annotations

import httpx
import pytest

from tests.services.reader.conftest import Page, live, opened, post


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


@pytest.mark.parametrize("before", ["x", "0", "-1", "1.5", "", "9" * 19])
async def test_a_bad_before_cursor_is_a_400_page(
    http: httpx.AsyncClient, story_id: str, before: str
) -> None:
    """A cursor no "Older updates" link could hold is 400, as an HTML page under the policy."""
    await opened(http, story_id)
    r = await http.get(f"/live/{story_id}", params={"before": before})
    assert r.status_code == 400
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in r.headers["content-security-policy"]
    assert "retry-after" not in r.headers
    assert "That link to older updates is not valid." in r.text
