"""Embeds on the page: images, link cards, click-to-load players (CONTRACT "Embeds")."""

from __future__ import annotations

import httpx
import pytest

from events.embeds import EmbedKind
from services.reader.embeds import player_url
from tests.services.reader.conftest import Page, a_full_story, live, opened, post


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
    kind: EmbedKind, url: str, player: str | None
) -> None:
    """Videos and maps map to the player the policy frames; the rest only link out."""
    assert player_url(kind, url) == player


@pytest.mark.parametrize(
    ("kind", "url"),
    [
        ("video", "https://youtu.be/dQw4w9WgXcQ"),
        ("video", "https://vimeo.com/123456789"),
        ("video", "https://www.dailymotion.com/video/x8abc12"),
        ("map", "https://datawrapper.dwcdn.net/AbC12/3/"),
        ("map", "https://www.openstreetmap.org/export/embed.html?bbox=1,2,3,4"),
    ],
)
async def test_every_player_is_one_the_pages_policy_lets_it_frame(
    http: httpx.AsyncClient, story_id: str, kind: str, url: str
) -> None:
    """The load button's player is on an origin the page's ``frame-src`` names."""
    await opened(http, story_id)
    await post(http, story_id, "entry.published", entry_id="e", body="<p>With a player</p>")
    v = await post(http, story_id, "embed.attached", entry_id="e", kind=kind, url=url)
    r = await live(http, story_id, v)
    [load] = Page(r.text).find("button", class_="embed-load")
    policy = dict(d.strip().split(" ", 1) for d in r.headers["content-security-policy"].split(";"))
    origin = "/".join((load["data-player"] or "").split("/")[:3])
    assert origin in policy["frame-src"].split()
