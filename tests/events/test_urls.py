"""Embed URLs and the provider allow-list (CONTRACT.md "Details: Embeds", "Edges")."""

from __future__ import annotations

import pytest

from events.urls import KINDS, PROVIDERS, refused_embed_url

ACCEPTED = [
    ("video", "https://www.youtube.com/watch?v=dQw4w9WgXcQ"),
    ("video", "https://youtu.be/dQw4w9WgXcQ"),
    ("video", "https://www.youtube-nocookie.com/embed/dQw4w9WgXcQ"),
    ("video", "https://player.vimeo.com/video/76979871"),
    ("video", "https://www.dailymotion.com/video/x8abcd"),
    ("video", "https://dai.ly/x8abcd"),
    ("video", "HTTPS://WWW.YouTube.COM/watch?v=dQw4w9WgXcQ"),
    ("social", "https://x.com/afp/status/1"),
    ("social", "https://twitter.com/afp/status/1"),
    ("social", "https://bsky.app/profile/afp.bsky.social/post/3k"),
    ("social", "https://www.instagram.com/p/Cabc/"),
    ("social", "https://m.facebook.com/story.php?id=1"),
    ("social", "https://www.threads.net/@afp/post/C1"),
    ("social", "https://www.tiktok.com/@afp/video/1"),
    ("map", "https://www.openstreetmap.org/#map=12/36.2/37.1"),
    ("map", "https://google.com/maps"),
    ("map", "https://www.google.com/maps/place/Aleppo+Citadel/@36.19,37.16,17z"),
    ("map", "https://www.google.com/maps?q=36.19,37.16"),
    ("map", "https://datawrapper.dwcdn.net/AbCdE/3/"),
    ("image", "https://example.org/aleppo-citadel.jpg"),
    ("image", "https://cdn.images.example.co.uk/2026/11/24/photo.webp?w=1200#x"),
    ("link", "https://example.org/"),
    ("link", "https://xn--bcher-kva.de/ein-buch"),
    ("link", "https://example.org/path%20with%20escapes?q=a&b=c"),
]

REFUSED = [
    # Not https, or not written out in full.
    ("video", "http://www.youtube.com/watch?v=x", "scheme http: is not https"),
    ("link", "javascript:alert(1)", "scheme javascript: is not https"),
    ("image", "data:image/png;base64,iVBORw0KGgo=", "scheme data: is not https"),
    ("link", "ftp://example.org/file", "scheme ftp: is not https"),
    ("video", "//www.youtube.com/watch?v=x", "not an absolute https url"),
    ("link", "/live/syria-daily", "not an absolute https url"),
    ("link", "https:example.org", "not written as https://host/…"),
    ("link", "https:///example.org", "no host"),
    ("link", "https://", "no host"),
    # Userinfo and ports, whatever the kind.
    ("video", "https://user@www.youtube.com/watch?v=x", "userinfo (user@) in url"),
    ("image", "https://user:pass@example.org/a.jpg", "userinfo (user@) in url"),
    ("social", "https://x.com@evil.net/status/1", "userinfo (user@) in url"),
    ("video", "https://www.youtube.com:443/watch?v=x", "explicit port in url"),
    ("link", "https://example.org:/", "explicit port in url"),
    ("image", "https://example.org:8443/a.jpg", "explicit port in url"),
    # Characters no URL as typed contains.
    ("link", "https://example.org/a b", "whitespace U+0020 in url"),
    ("link", "https://example.org/a\tb", "whitespace U+0009 in url"),
    ("link", " https://example.org/", "whitespace U+0020 in url"),
    ("link", "https://example.org/\x00", "control character U+0000 in url"),
    ("link", "https://example.org/\u202egpj.exe", "invisible character U+202E in url"),
    ("video", "https://evil.net\\@www.youtube.com/", "backslash in url"),
    # Hosts that are no public DNS name.
    ("image", "https://192.0.2.1/a.jpg", "host is an IP address"),
    ("image", "https://[2001:db8::1]/a.jpg", "host is an IP address"),
    ("image", "https://2130706433/a.jpg", "host is an IP address"),
    ("image", "https://0x7f.1/a.jpg", "host is an IP address"),
    ("image", "https://localhost/a.jpg", "host localhost is not a public DNS name"),
    ("link", "https://intranet/wiki", "host intranet is not a public DNS name"),
    ("link", "https://printer.local/", "host printer.local is not a public DNS name"),
    ("link", "https://example.org./", "host example.org. ends with a dot"),
    ("link", "https://exa..mple.org/", "host exa..mple.org is not a valid DNS name"),
    ("link", "https://ex%61mple.org/", "host ex%61mple.org is not a valid DNS name"),
    ("link", "https://\uff59outube.com/", "host \uff59outube.com is not ASCII (write it as xn--…)"),
    ("link", "https://[2001:db8::1/", "malformed url"),
    # The allow-list: listed hosts and their subdomains only.
    (
        "video",
        "https://evilyoutube.com/watch?v=x",
        "evilyoutube.com is not an allowed video provider",
    ),
    (
        "video",
        "https://youtube.com.evil.net/x",
        "youtube.com.evil.net is not an allowed video provider",
    ),
    ("video", "https://example.org/video.mp4", "example.org is not an allowed video provider"),
    (
        "social",
        "https://www.youtube.com/watch?v=x",
        "www.youtube.com is not an allowed social provider",
    ),
    (
        "social",
        "https://mastodon.social/@afp/1",
        "mastodon.social is not an allowed social provider",
    ),
    (
        "map",
        "https://www.google.com/search?q=aleppo",
        "www.google.com is an allowed map provider only under /maps",
    ),
    (
        "map",
        "https://www.google.com/mapsearch",
        "www.google.com is an allowed map provider only under /maps",
    ),
    (
        "map",
        "https://www.google.com/maps/../search",
        "www.google.com is an allowed map provider only under /maps",
    ),
    (
        "map",
        "https://www.google.com/maps/%2e%2e/search",
        "www.google.com is an allowed map provider only under /maps",
    ),
    ("map", "https://notgoogle.com/maps", "notgoogle.com is not an allowed map provider"),
    ("gif", "https://example.org/a.gif", "unknown embed kind 'gif'"),
]


@pytest.mark.parametrize(("kind", "url"), ACCEPTED)
def test_an_allowed_embed_url_is_accepted(kind: str, url: str) -> None:
    """Public https URLs, from a listed provider where the kind needs one, give no reason."""
    assert refused_embed_url(kind, url) == ()


@pytest.mark.parametrize(("kind", "url", "reason"), REFUSED)
def test_a_refused_embed_url_says_why(kind: str, url: str, reason: str) -> None:
    """Each refused URL carries the reason a newsroom can act on."""
    assert reason in refused_embed_url(kind, url)


@pytest.mark.parametrize(
    ("kind", "provider"),
    [(kind, provider) for kind, listed in PROVIDERS.items() for provider in listed],
)
def test_every_listed_provider_and_its_subdomains_are_accepted(kind: str, provider: str) -> None:
    """A listed host, bare or under www., is accepted for its kind (and its path, if listed)."""
    assert refused_embed_url(kind, f"https://{provider}/") == ()
    assert refused_embed_url(kind, f"https://www.{provider}/x") == ()


@pytest.mark.parametrize(
    ("kind", "provider"),
    [(kind, provider) for kind, listed in PROVIDERS.items() for provider in listed],
)
def test_a_look_alike_of_every_provider_is_refused(kind: str, provider: str) -> None:
    """A host that merely starts or ends like a listed one is not on the list."""
    host, _, path = provider.partition("/")
    assert refused_embed_url(kind, f"https://evil{host}/{path}") != ()
    assert refused_embed_url(kind, f"https://{host}.evil.net/{path}") != ()


def test_the_allow_list_is_the_contracts() -> None:
    """Video, social and map are listed; image and link take any public https URL."""
    assert set(PROVIDERS) == {"video", "social", "map"}
    assert set(KINDS) == {"video", "image", "social", "map", "link"}
    assert {
        "youtube.com",
        "youtu.be",
        "youtube-nocookie.com",
        "vimeo.com",
        "dailymotion.com",
    } <= set(PROVIDERS["video"])
    assert set(PROVIDERS["social"]) == {
        "x.com",
        "twitter.com",
        "bsky.app",
        "instagram.com",
        "facebook.com",
        "threads.net",
        "tiktok.com",
    }
    assert set(PROVIDERS["map"]) == {
        "openstreetmap.org",
        "google.com/maps",
        "datawrapper.dwcdn.net",
    }


def test_every_problem_with_a_url_is_named() -> None:
    """One answer lists every reason, so the newsroom fixes them all at once."""
    assert refused_embed_url("video", "http://user@www.youtube.com:80/watch") == (
        "scheme http: is not https",
        "userinfo (user@) in url",
        "explicit port in url",
    )


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_userinfo_and_ports_are_refused_for_every_kind(kind: str) -> None:
    """CONTRACT.md "Edges": userinfo and any explicit port, :443 too, whatever the kind."""
    assert "userinfo (user@) in url" in refused_embed_url(kind, "https://a@www.youtube.com/")
    assert "explicit port in url" in refused_embed_url(kind, "https://www.youtube.com:443/")
