"""Every exception an HTTP path meets becomes its answer in one function, ``refusal()``.

CONTRACT.md "HTTP API" and "Errors": an error is ``{"error": {"code", "message", "details"}}``
with its status. What was raised is first put into the one error tree (``events/errors.py``),
then answered from the tree, and counted there (``dateline_refusals_total`` by code)::

    raised                          in the tree                    status  headers
    DatelineError, any subclass     itself                         its     Retry-After: 1 on 429, 503
                                                                           (details.retry_after
                                                                           when it says more)
    Starlette HTTPException 404     NotFound          not_found    404     its own
      (no such route)
    Starlette HTTPException 405     MethodNotAllowed  method_not_  405     its own (Allow)
      (wrong method)                                  allowed
    Starlette HTTPException, other  BadRequest        bad_request  its     its own
    RequestValidationError          BadRequest        bad_request  400
      (FastAPI; details.errors)
    anything else: a bug            DatelineError     internal     500
      (message "internal error", details null: nothing of the exception is shown)

    on a page for people (``page_codes`` given; the reader's are bad_request, unknown_story):
    any other code is "not now": its status if 5xx, else 503, and Retry-After: 5

Who calls it: the handlers ``create_app`` installs for every kind of exception (so every FastAPI
route, healthz and metrics among them, the reader's static files, no route, wrong method, and
bugs), the direct write route (``newsroom.py``, which FastAPI does not dispatch), and the reader
page (``services/http/reader.py``), which takes status, code and headers from it and renders
only the HTML for people itself.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from dataclasses import dataclass

import orjson
from fastapi import Response
from fastapi.exceptions import RequestValidationError
from prometheus_client import Counter
from pydantic import JsonValue
from starlette.exceptions import HTTPException

from events.errors import BadRequest, DatelineError, MethodNotAllowed, NotFound
from services.http.responses import JSON

RETRY_AFTER = "1"
"""Seconds a client told 429 waits before it tries again (CONTRACT "Errors")."""
PAGE_RETRY_AFTER = "5"
"""Seconds a person is asked to wait before reloading a page that could not be shown."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """The answer to an exception: status, error code, the contract's body and the headers."""

    status: int
    code: str
    body: dict[str, JsonValue]
    headers: dict[str, str]

    def json(self) -> Response:
        """The answer an API client gets: the body as JSON."""
        return Response(orjson.dumps(self.body), self.status, self.headers, media_type=JSON)


def _tree(error: BaseException) -> DatelineError:
    """``error`` as a member of the one error tree (see the table above)."""
    if isinstance(error, DatelineError):
        return error
    if isinstance(error, HTTPException):
        kind = {404: NotFound, 405: MethodNotAllowed}.get(error.status_code, BadRequest)
        found = kind(str(error.detail))
        found.status = error.status_code  # Starlette's status stands; the tree gives the code
        return found
    if isinstance(error, RequestValidationError):
        return BadRequest("malformed request", {"errors": str(error)})
    return DatelineError("internal error")


def refusal(
    error: BaseException, refusals: Counter, *, page_codes: AbstractSet[str] | None = None
) -> Refusal:
    """The contract's answer to any exception, counted in ``refusals`` by its code.

    ``page_codes``: the answer is a page for people, which shows these codes as they are; any
    other means "not now" to a person, so it is a 5xx they may retry.
    """
    found = _tree(error)
    refusals.labels(found.code).inc()
    status = found.status
    headers = dict(error.headers or {}) if isinstance(error, HTTPException) else {}
    if status in (429, 503):  # "not now": say when to come back (a CDN or a tool waits that long)
        wait = found.details.get("retry_after") if isinstance(found.details, dict) else None
        headers["Retry-After"] = str(wait) if type(wait) is int and wait >= 1 else RETRY_AFTER
    if page_codes is not None and found.code not in page_codes:
        status = status if status >= 500 else 503
        headers["Retry-After"] = PAGE_RETRY_AFTER
    return Refusal(status, found.code, found.to_body(), headers)
