"""The CLI's one error mapping: API refusals into the error tree, errors into stderr and exit codes.

Rules (CONTRACT "Command line"; docs/cli.md "Conventions"; docs/errors.md "In the command line"):
- the CLI raises only the classes of ``events.errors``. A refusal the API answered,
  ``{"error": {code, message, details}}``, becomes the class whose ``code`` it names, else the
  first class of its status (``events.errors.from_answer``); the instance keeps the answer's code, status and
  details, and only such an answer shows ``(code, status)`` after its message;
- every command runs inside ``reported()``: a ``DatelineError`` becomes its ``lines()`` on stderr
  and its ``exit_code()``. Anything else is a bug and keeps its traceback (exit 1);
- a check the CLI ran and saw fail (``ChainBroken``) has already printed what it found, as its
  result on stdout: it adds nothing to stderr.

Exit codes, by class (``exit_code``)::

    ChainBroken                                1  a check failed (audit verify)
    UsageError                                 2  a command line the CLI cannot send
    PortInUse                                  2  a server cannot listen where it was told
    every other 4xx: BadRequest, Unauthorized,
      Forbidden, NotFound and its Unknown*,
      MethodNotAllowed, Conflict and its
      subclasses, PayloadTooLarge,
      UnsupportedMediaType, InvalidEvent,
      InvalidRequest, IdempotencyKeyReused     2  refused: the same request would be again
    RateLimited, TooManySubscriptions (429)    3  still refused after the retries
    Unreachable: StoreUnavailable,
      ApiUnreachable, GatewayUnreachable       3  no server, store or gateway answered
    DatelineError, ProjectionLagging, any 5xx  3  the server failed
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import orjson
import typer
from rich.console import Console
from rich.markup import escape

from events.errors import ChainBroken, DatelineError, PortInUse, UsageError

CHECK_FAILED, REFUSED, UNREACHABLE = 1, 2, 3
TOO_MANY_REQUESTS = 429
"""Retried like a 5xx (docs/cli.md "Retries"), so it ends as one: exit 3."""


def answered(error: DatelineError) -> bool:
    """Whether the error is an answer of the API's (``from_answer``), not one the CLI raised."""
    return "status" in vars(error)


def lines(error: DatelineError) -> list[str]:
    """What stderr shows: the message (with the answer's code and status), then its details."""
    if isinstance(error, ChainBroken) and not answered(error):
        return []
    if answered(error):
        out = [f"error: {error.message} ({error.code}, {error.status})"]
    else:
        out = [f"error: {error.message}"]
    details = error.details
    if isinstance(details, dict):
        shown_keys = {"refused", "errors"}
        refused = details.get("refused")
        if isinstance(refused, list) and refused:
            field = details.get("field")
            where = f" in {field}" if isinstance(field, str) else ""
            out.append(f"refused{where}: " + "; ".join(str(r) for r in refused))
            shown_keys.add("field")
        errors = details.get("errors")
        if isinstance(errors, list):
            out.extend(
                f"  {e.get('field')}: {e.get('problem')}" for e in errors if isinstance(e, dict)
            )
        rest = {k: v for k, v in details.items() if k not in shown_keys}
        if rest:
            out.append("details: " + orjson.dumps(rest).decode())
    elif details is not None:
        out.append("details: " + orjson.dumps(details).decode())
    return out


def exit_code(error: DatelineError) -> int:
    """What ``dateline`` exits with (the table above)."""
    if isinstance(error, ChainBroken):
        return CHECK_FAILED
    if isinstance(error, UsageError | PortInUse):
        return REFUSED
    if error.status >= 500 or error.status == TOO_MANY_REQUESTS:
        return UNREACHABLE
    return REFUSED


def report(error: DatelineError) -> int:
    """Print ``error``'s ``lines`` on stderr; its ``exit_code`` (what ``reported`` does, for a
    process that ends with ``os._exit``: a worker of ``serve``)."""
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    for line in lines(error):
        err.print(escape(line))
    return exit_code(error)


@contextlib.contextmanager
def reported() -> Iterator[None]:
    """Turn a ``DatelineError`` into its ``lines`` on stderr and its ``exit_code``."""
    try:
        yield
    except DatelineError as error:
        raise typer.Exit(report(error)) from None
