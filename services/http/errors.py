"""Every exception an HTTP path meets becomes its answer here, in one function: ``refusal()``.

CONTRACT.md "HTTP API" and "Errors": an error is ``{"error": {"code", "message", "details"}}``
with its status. What is raised is first put into the one error tree (``events/errors.py``), then
answered from it; the refusal is counted there too (``dateline_refusals`` by code)::

    raised                               tree                  status  headers
    DatelineError (any subclass)         itself                its     Retry-After: 1 when 429
    Starlette HTTPException 404          NotFound              404     its own
      (no such route)                      not_found
    Starlette HTTPException 405          MethodNotAllowed      405     its own (Allow)
      (wrong method)                       method_not_allowed
    Starlette HTTPException, other       BadRequest            its     its own
    RequestValidationError (FastAPI)     BadRequest            400
                                           details.errors
    anything else: a bug                 DatelineError         500     (message "internal error",
                                           internal                    no traceback, no details)

    a page for people (``page_codes`` given: the reader page's bad_request and unknown_story),
    any other code: "temporarily unavailable", the status if 5xx else 503, Retry-After: 5

Who calls it: the exception handlers ``create_app`` installs (every FastAPI route, healthz and
metrics included, the reader's static files, no route, wrong method, bugs), the direct write
route (``newsroom.py``, which FastAPI does not dispatch), and the reader page
(``services/reader/routes.py``), which takes status, code and headers from it and renders the
HTML for people itself.
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
    if status == 429:
        headers["Retry-After"] = "1"
    if page_codes is not None and found.code not in page_codes:
        status = status if status >= 500 else 503
        headers["Retry-After"] = PAGE_RETRY_AFTER
    return Refusal(status, found.code, found.to_body(), headers)
