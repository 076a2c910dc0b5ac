"""One mapping from any exception to the contract's answer, on every HTTP path (CONTRACT "Errors")."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest
import redis.asyncio as redis
from fastapi.exceptions import RequestValidationError
from prometheus_client import CollectorRegistry, Counter
from starlette.exceptions import HTTPException

from events.errors import DatelineError, VersionConflict
from services.http.errors import refusal
from services.store import keys
from tests.conftest import ADMIN_TOKEN, free_port, start_api
from tests.services.http.conftest import error_code, open_story


def every_error_class() -> list[type[DatelineError]]:
    """DatelineError and every class below it, however deep."""
    found: list[type[DatelineError]] = []
    pending = [DatelineError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return sorted(found, key=lambda c: c.__name__)


def an_instance(cls: type[DatelineError]) -> DatelineError:
    """One of ``cls``, with a message and details."""
    if issubclass(cls, VersionConflict):
        return cls("story is at version 7, not 3", 7)
    return cls(f"a {cls.__name__}", {"field": "x", "refused": ["y"]})


def refusals() -> tuple[Counter, CollectorRegistry]:
    """A refusal counter of its own, and the registry to read it back from."""
    registry = CollectorRegistry()
    return Counter("dateline_refusals", "r", ["code"], registry=registry), registry


@pytest.mark.parametrize("cls", every_error_class(), ids=lambda c: c.__name__)
def test_every_error_class_gets_its_status_code_and_body(cls: type[DatelineError]) -> None:
    """Each class answers its status and code, its message and details, counted by its code."""
    error = an_instance(cls)
    counter, registry = refusals()
    answer = refusal(error, counter)
    assert (answer.status, answer.code) == (cls.status, cls.code)
    body = {"error": {"code": cls.code, "message": error.message, "details": error.details}}
    assert answer.body == body
    assert answer.headers == ({"Retry-After": "1"} if cls.status in (429, 503) else {})
    response = answer.json()
    assert response.status_code == cls.status
    assert response.media_type == "application/json"
    assert json.loads(bytes(response.body)) == body
    assert registry.get_sample_value("dateline_refusals_total", {"code": cls.code}) == 1


@pytest.mark.parametrize("cls", every_error_class(), ids=lambda c: c.__name__)
def test_on_a_page_every_error_but_the_pages_own_is_a_5xx_to_retry(
    cls: type[DatelineError],
) -> None:
    """For people, the page's own codes stand; any other is 5xx (503 below 500), Retry-After 5."""
    counter, _ = refusals()
    own = {"bad_request", "unknown_story"}
    answer = refusal(an_instance(cls), counter, page_codes=own)
    if cls.code in own:
        assert (answer.status, answer.headers) == (cls.status, {})
    else:
        assert answer.status == (cls.status if cls.status >= 500 else 503)
        assert answer.headers["Retry-After"] == "5"
    assert answer.code == cls.code


@pytest.mark.parametrize(
    ("raised", "status", "code", "headers"),
    [
        pytest.param(HTTPException(404), 404, "not_found", {}, id="no-route"),
        pytest.param(
            HTTPException(405, headers={"Allow": "GET"}),
            405,
            "method_not_allowed",
            {"Allow": "GET"},
            id="wrong-method",
        ),
        pytest.param(HTTPException(418), 418, "bad_request", {}, id="other-status"),
        pytest.param(RequestValidationError([]), 400, "bad_request", {}, id="validation"),
    ],
)
def test_the_frameworks_refusals_join_the_tree(
    raised: Exception, status: int, code: str, headers: dict[str, str]
) -> None:
    """Starlette's and FastAPI's own refusals answer in the contract's shape, headers kept."""
    counter, _ = refusals()
    answer = refusal(raised, counter)
    assert (answer.status, answer.code, answer.headers) == (status, code, headers)
    assert json.loads(bytes(answer.json().body))["error"].keys() == {"code", "message", "details"}


def test_any_other_exception_is_internal_with_nothing_of_it_shown() -> None:
    """A bug is 500 internal, message "internal error", details null: no text of the exception."""
    counter, registry = refusals()
    answer = refusal(KeyError("secret-key-name"), counter)
    assert answer.status == 500
    assert answer.body == {
        "error": {"code": "internal", "message": "internal error", "details": None}
    }
    assert "secret" not in bytes(answer.json().body).decode()
    assert registry.get_sample_value("dateline_refusals_total", {"code": "internal"}) == 1


# -- on the running server ----------------------------------------------------------------------


async def test_no_route_is_not_found_and_a_wrong_method_names_the_allowed_one(
    http: httpx.AsyncClient,
) -> None:
    """An unknown path is 404 not_found; a known path with another method 405 and Allow."""
    r = await http.get("/no/such/route")
    assert r.status_code == 404
    assert error_code(r) == "not_found"
    r = await http.put("/stories")
    assert r.status_code == 405
    assert error_code(r) == "method_not_allowed"
    assert r.headers["allow"] == "POST"
    assert r.json()["error"]["details"] is None


async def test_an_unexpected_exception_in_a_route_is_the_contracts_500_without_a_traceback(
    http: httpx.AsyncClient, client: redis.Redis, story_id: str
) -> None:
    """Keys of the wrong type fail the direct write and a FastAPI route: JSON 500, no trace."""
    await open_story(http, story_id)
    await client.delete(keys.head(story_id), keys.events(story_id))
    await client.set(keys.head(story_id), "not a hash")
    await client.set(keys.events(story_id), "not a stream")
    try:
        answers = [
            await http.post(
                f"/stories/{story_id}/events",
                json={"type": "entry.published", "data": {"body": "<p>x</p>"}},
            ),
            await http.get(f"/stories/{story_id}/events"),
        ]
    finally:
        await client.delete(keys.head(story_id), keys.events(story_id))
    for r in answers:
        assert r.status_code == 500
        assert r.headers["content-type"] == "application/json"
        assert r.json() == {
            "error": {"code": "internal", "message": "internal error", "details": None}
        }
        assert "Traceback" not in r.text
        assert "WRONGTYPE" not in r.text


# -- with the store down ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api_without_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A running ``dateline api`` whose store cannot be reached (nothing listens there)."""
    port = free_port()
    proc = start_api(f"redis://127.0.0.1:{free_port()}", port)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, "dateline api exited"
            assert time.monotonic() < deadline, "dateline api did not start"
            try:
                httpx.get(f"{url}/openapi.json", timeout=1.0)
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/healthz"),
        ("GET", "/stories"),
        ("GET", "/stories/some-story"),
        ("POST", "/stories/some-story/events"),
    ],
)
async def test_a_store_that_is_down_is_store_unavailable_on_every_json_path(
    api_without_store: str, method: str, path: str
) -> None:
    """healthz, reads and the direct write route all answer 503 store_unavailable as JSON."""
    async with httpx.AsyncClient(base_url=api_without_store, timeout=15.0) as c:
        r = await c.request(
            method,
            path,
            json={"type": "entry.published", "data": {"body": "<p>x</p>"}},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
    assert r.status_code == 503
    assert r.headers["content-type"] == "application/json"
    assert error_code(r) == "store_unavailable"
    assert r.headers["retry-after"] == "1"  # issue 10: "503 with Retry-After", every path


async def test_a_store_that_is_down_gives_people_a_page_to_retry(api_without_store: str) -> None:
    """The reader page answers 503 in HTML, under its policy, with Retry-After: 5."""
    async with httpx.AsyncClient(base_url=api_without_store, timeout=15.0) as c:
        r = await c.get("/live/some-story")
    assert r.status_code == 503
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.headers["retry-after"] == "5"
    assert "default-src 'none'" in r.headers["content-security-policy"]
    assert "Temporarily unavailable" in r.text
