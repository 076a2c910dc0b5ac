"""What the reader page's tests share: a parser for the page, and stories set up through the API."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from typing import Any

import httpx


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
    """Open ``story`` with the title every reader test uses."""
    body = {"story": story, "title": "Storm Darragh: live", **extra}
    r = await http.post("/stories", json=body)
    assert r.status_code == 201, r.text


async def post(http: httpx.AsyncClient, story: str, event: str, /, **data: Any) -> int:
    """Append one event; its version."""
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
