"""What the HTTP API's tests share: clients without or with a lesser token, and story set-up.

Everything goes through the session's running ``dateline serve`` (tests/conftest.py), each test
on stories of its own.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest


def error_code(r: httpx.Response) -> str:
    """The contract's error code of an answer."""
    code: str = r.json()["error"]["code"]
    return code


async def open_story(http: httpx.AsyncClient, story: str, title: str = "A story") -> None:
    """Open ``story``; it must land."""
    r = await http.post("/stories", json={"story": story, "title": title})
    assert r.status_code == 201, r.text


async def publish(
    http: httpx.AsyncClient, story: str, body: str = "<p>News</p>", **data: Any
) -> dict[str, Any]:
    """Publish an entry; the 201 envelope."""
    r = await http.post(
        f"/stories/{story}/events",
        json={"type": "entry.published", "data": {"body": body, **data}},
    )
    assert r.status_code == 201, r.text
    envelope: dict[str, Any] = r.json()
    return envelope


async def events(http: httpx.AsyncClient, story: str) -> list[dict[str, Any]]:
    """The story's whole history, as the admin reads it."""
    r = await http.get(f"/stories/{story}/events")
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()["events"]
    return found


async def state(http: httpx.AsyncClient, story: str, version: int, **params: Any) -> Any:
    """The story's state once the projection has reached ``version``."""
    r = await http.get(f"/stories/{story}", params={"min_version": version, **params})
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture
async def anonymous(api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client without credentials."""
    async with httpx.AsyncClient(base_url=api_url, timeout=15.0) as c:
        yield c


@pytest.fixture
async def editor(api_url: str, editor_token: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client with the session's editor token."""
    headers = {"Authorization": f"Bearer {editor_token}"}
    async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=15.0) as c:
        yield c


def canonical(value: Any) -> bytes:
    """The contract's canonical JSON, written out here independently of the server's."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
