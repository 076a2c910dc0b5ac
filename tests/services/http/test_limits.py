"""Write limits through the API: 429 ``rate_limited`` past a token's allowance, nothing appended,
and one allowance for every API process on the store (CONTRACT second edition, "Limits")."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, free_port, start_api, wait_ready

RATE, BURST = "0.5", "4"
"""One write every 2 s after a burst of 4: slow enough that no write is freed during a test."""


@pytest.fixture(scope="module")
def two_apis(redis_url: str) -> Iterator[tuple[str, str]]:
    """Two ``dateline api`` processes on one store, the write limit on."""
    ports = free_port(), free_port()
    procs = [
        start_api(redis_url, port, DATELINE_WRITE_RATE=RATE, DATELINE_WRITE_BURST=BURST)
        for port in ports
    ]
    bases = tuple(f"http://127.0.0.1:{port}" for port in ports)
    try:
        for proc, base in zip(procs, bases, strict=True):
            wait_ready(proc, base)
        yield bases[0], bases[1]
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)


def a_token(base: str, role: str = "editor") -> str:
    """A fresh token (the admin's writes are limited too: one token per test keeps them apart)."""
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    answer = httpx.post(f"{base}/tokens", json={"role": role}, headers=admin)
    assert answer.status_code in (201, 429), answer.text
    if answer.status_code == 429:  # the admin's own allowance: wait as told, once
        time.sleep(int(answer.headers["retry-after"]))
        answer = httpx.post(f"{base}/tokens", json={"role": role}, headers=admin)
    assert answer.status_code == 201, answer.text
    token: str = answer.json()["token"]
    return token


def post(base: str, token: str, story: str, n: int) -> httpx.Response:
    return httpx.post(
        f"{base}/stories/{story}/events",
        json={"type": "entry.published", "data": {"body": f"<p>Update {n}</p>"}},
        headers={"Authorization": f"Bearer {token}"},
    )


def test_past_the_burst_a_write_is_429_and_nothing_is_appended(two_apis: tuple[str, str]) -> None:
    base, _ = two_apis
    token, story = a_token(base), f"lim-{uuid.uuid4().hex[:10]}"
    opened = httpx.post(
        f"{base}/stories",
        json={"story": story, "title": "Limits"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert opened.status_code == 201
    answers = [post(base, token, story, n) for n in range(4)]
    assert [a.status_code for a in answers] == [201, 201, 201, 429]
    refused = answers[-1]
    error = refused.json()["error"]
    assert error["code"] == "rate_limited"
    assert refused.headers["retry-after"] == "2"
    assert error["details"] == {"retry_after": 2}
    state = httpx.get(
        f"{base}/stories/{story}/events", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    assert [e["version"] for e in state.json()["events"]] == [1, 2, 3, 4]  # nothing of the 429


def test_the_allowance_is_shared_by_every_api_process(two_apis: tuple[str, str]) -> None:
    """Writes through either of two API processes take from one allowance: 4 in all, not 8."""
    first, second = two_apis
    token, story = a_token(first), f"lim-{uuid.uuid4().hex[:10]}"
    statuses = [post(first if n % 2 else second, token, story, n).status_code for n in range(8)]
    # The story does not exist: each allowed write is 404 unknown_story, each refused one 429.
    assert statuses.count(429) == 4
    assert statuses[:4] == [404, 404, 404, 404]


def test_a_write_refused_for_its_role_takes_nothing(two_apis: tuple[str, str]) -> None:
    """Only a token that may write spends its allowance: an auditor's write is 403, every time."""
    base, _ = two_apis
    token = a_token(base, "auditor")
    statuses = {post(base, token, "any-story", n).status_code for n in range(6)}
    assert statuses == {403}
