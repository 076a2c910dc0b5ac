"""The command line's HTTP client for the API: one request, its retries, and what a refusal means.

Rules (CONTRACT "Command line", "Command line, more"; docs/errors.md "In the command line"):
- the API is at ``--api-url`` / ``DATELINE_API_URL`` (``http://127.0.0.1:8000``), and the token is
  ``--token`` / ``DATELINE_TOKEN``, sent as ``Authorization: Bearer``;
- a 4xx answer is a refusal: the error class its ``code`` names (``events.errors.from_answer``,
  exit 2), with the API's message and details. It is never retried: the same request would be
  refused again;
- no answer (connection refused, timeout, a dropped connection), a 429 or a 5xx is retried up to
  ``RETRIES`` times with backoff, then ends as ``ApiUnreachable`` (exit 3). A write is retried with
  the same ``Idempotency-Key`` it was first sent with, so the server answers a retry of a write it
  already stored from memory and nothing is appended twice (CONTRACT "Idempotency");
- an ``--api-url`` that is not an http(s) URL is a ``UsageError`` (exit 2), before anything is sent.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import typer

from events.errors import ApiUnreachable, UsageError, from_answer
from services.settings import DEFAULT_API_URL, Settings

RETRIES = 3
"""Retries after the first attempt, for no answer, 429 and 5xx."""
BACKOFF = 0.25
"""Seconds before the first retry; doubled before each next one."""
TIMEOUT = 30.0


@dataclass(frozen=True)
class Target:
    """Where the API is and which token to present (the global options, stored in ``ctx.obj``)."""

    api_url: str
    token: str | None

    @classmethod
    def of(cls, api_url: str | None = None, token: str | None = None) -> Target:
        """The given values, else ``DATELINE_API_URL`` / ``DATELINE_TOKEN``, else the default."""
        settings = Settings.load()
        url = api_url or settings.api_url or DEFAULT_API_URL
        return cls(url.rstrip("/"), token or settings.token or None)

    @classmethod
    def from_context(cls, ctx: typer.Context) -> Target:
        found = ctx.find_object(Target)
        return found if found is not None else cls.of()


def _refusal(response: httpx.Response) -> tuple[str, str, Any]:
    """The contract's ``{"error": {code, message, details}}``, or a stand-in for another body."""
    with contextlib.suppress(ValueError):
        error = response.json().get("error")
        if isinstance(error, dict) and "code" in error:
            return str(error["code"]), str(error.get("message", "")), error.get("details")
    text = response.text.strip()[:200] or response.reason_phrase
    return f"http_{response.status_code}", text, None


class Api:
    """A synchronous client for the Dateline API, as the command line uses it."""

    def __init__(
        self,
        target: Target,
        *,
        retries: int = RETRIES,
        backoff: float = BACKOFF,
        timeout: float = TIMEOUT,
    ) -> None:
        try:
            url = httpx.URL(target.api_url)
        except httpx.InvalidURL as error:
            raise UsageError(f"not an API URL: {target.api_url!r} ({error})") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise UsageError(f"not an API URL: {target.api_url!r} (give http://host:port)")
        self.target = target
        self.retries = retries
        self.backoff = backoff
        headers = {"User-Agent": "dateline-cli"}
        if target.token:
            headers["Authorization"] = f"Bearer {target.token}"
        self.http = httpx.Client(base_url=target.api_url, headers=headers, timeout=timeout)

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *_: object) -> None:
        self.http.close()

    # -- one request ------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        key: str | None = None,
    ) -> httpx.Response:
        """Send one request (retried on no answer, 429 and 5xx); return a 2xx/3xx answer.

        Raises the refusal's error class on 4xx, ``ApiUnreachable`` when the retries run out.
        """
        headers = {"Idempotency-Key": key} if key is not None else {}
        content = orjson.dumps(body) if body is not None else None
        if content is not None:
            headers["Content-Type"] = "application/json"
        query = {k: v for k, v in (params or {}).items() if v is not None}
        delay = self.backoff
        why = "no answer"
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(delay)
                delay *= 2
            try:
                response = self.http.request(
                    method, path, params=query, content=content, headers=headers
                )
            except (httpx.InvalidURL, httpx.UnsupportedProtocol) as error:
                raise UsageError(f"not an API URL: {self.target.api_url} ({error})") from None
            except httpx.TransportError as error:
                why = f"no answer from {self.target.api_url} ({type(error).__name__}: {error})"
                continue
            status = response.status_code
            if status == 429 or status >= 500:
                code, message, _ = _refusal(response)
                why = f"the API answered {status} {code}: {message}"
                if status == 429:
                    with contextlib.suppress(ValueError):
                        delay = max(delay, min(float(response.headers["retry-after"]), 10.0))
                continue
            if status >= 400:
                code, message, details = _refusal(response)
                if status == 401 and not self.target.token:
                    message += " (no token given: use --token or DATELINE_TOKEN)"
                raise from_answer(status, code, message, details)
            return response
        raise ApiUnreachable(why)

    def get(self, path: str, **params: Any) -> Any:
        """GET a JSON answer."""
        return self.request("GET", path, params=params).json()

    def post(self, path: str, body: Any, key: str | None = None) -> Any:
        """POST a JSON body (with its ``Idempotency-Key``); the JSON answer."""
        return self.request("POST", path, body=body, key=key).json()

    # -- the API's operations ---------------------------------------------------------------

    def append(
        self,
        story: str,
        event_type: str,
        data: Mapping[str, Any],
        *,
        key: str | None,
        expected_version: int | None = None,
    ) -> dict[str, Any]:
        """``POST /stories/{story}/events``: the appended envelope."""
        body: dict[str, Any] = {"type": event_type, "data": dict(data)}
        if expected_version is not None:
            body["expected_version"] = expected_version
        return dict(self.post(f"/stories/{story}/events", body, key))

    def open_story(self, body: Mapping[str, Any], *, key: str | None) -> dict[str, Any]:
        """``POST /stories``: the ``story.opened`` envelope."""
        return dict(self.post("/stories", dict(body), key))

    def events_pages(
        self, story: str, *, from_version: int = 1, limit: int = 10_000
    ) -> Iterator[list[Any]]:
        """``GET /stories/{story}/events``, page after page (``next_from_version``)."""
        start: int | None = from_version
        while start is not None:
            page = self.get(f"/stories/{story}/events", from_version=start, limit=limit)
            yield list(page["events"])
            start = page.get("next_from_version")


def api(ctx: typer.Context) -> Api:
    """A client for the API the global options name."""
    return Api(Target.from_context(ctx))
