"""Every failure a caller can act on, one class each: the one error tree of every surface.

Each class carries the HTTP status and the contract's error ``code`` (CONTRACT.md, "Errors"); an
instance carries ``message`` and ``details``. Each surface maps the tree in one place: the API
turns any ``DatelineError`` into ``{"error": {"code", "message", "details"}}`` (services/http),
the gateway into its error frame (services/realtime), the command line into a message and an exit
code (services/cli). Any other exception is a bug: 500 ``internal``, with no traceback shown::

    DatelineError                 500 internal
    ├── BadRequest                400 bad_request
    │   └── UsageError                usage (a command line the CLI cannot send)
    ├── Unauthorized              401 unauthorized
    ├── Forbidden                 403 forbidden
    ├── NotFound                  404 not_found (no such route)
    │   ├── UnknownStory              unknown_story
    │   ├── UnknownEntry              unknown_entry
    │   ├── UnknownEmbed              unknown_embed
    │   └── UnknownToken              unknown_token
    ├── MethodNotAllowed          405 method_not_allowed
    ├── Conflict                  409 conflict
    │   ├── StoryExists               story_exists
    │   ├── EntryExists               entry_exists
    │   ├── ClosedStory               story_closed
    │   ├── VersionConflict           version_conflict (details: current_version)
    │   ├── InvalidState              invalid_state
    │   ├── TokenNameTaken            token_name_taken
    │   └── ChainBroken               chain_broken (``audit verify`` found a bad chain)
    ├── PayloadTooLarge           413 payload_too_large
    ├── UnsupportedMediaType      415 unsupported_media_type
    ├── InvalidEvent              422 invalid_event (details: what was refused)
    ├── InvalidRequest            422 invalid_request
    ├── IdempotencyKeyReused      422 idempotency_key_reused
    ├── RateLimited               429 rate_limited
    ├── TooManySubscriptions      429 too_many_subscriptions (a websocket connection's 100)
    ├── PortInUse                 500 port_in_use (a process cannot listen where it was told)
    ├── Unreachable               503 unreachable
    │   ├── StoreUnavailable          store_unavailable
    │   ├── ApiUnreachable            api_unreachable (the CLI got no answer, or a 5xx)
    │   └── GatewayUnreachable        gateway_unreachable (``dateline tail`` got no gateway)
    └── ProjectionLagging         504 projection_lagging
"""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import JsonValue


class DatelineError(Exception):
    """Base of every error Dateline reports to a caller."""

    status: int = 500
    code: str = "internal"

    def __init__(self, message: str, details: JsonValue = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_body(self) -> dict[str, JsonValue]:
        """The contract's JSON error body."""
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class BadRequest(DatelineError):
    status, code = 400, "bad_request"


class UsageError(BadRequest):
    code = "usage"


class Unauthorized(DatelineError):
    status, code = 401, "unauthorized"


class Forbidden(DatelineError):
    status, code = 403, "forbidden"


class NotFound(DatelineError):
    status, code = 404, "not_found"


class UnknownStory(NotFound):
    code = "unknown_story"


class UnknownEntry(NotFound):
    code = "unknown_entry"


class UnknownEmbed(NotFound):
    code = "unknown_embed"


class UnknownToken(NotFound):
    code = "unknown_token"


class MethodNotAllowed(DatelineError):
    status, code = 405, "method_not_allowed"


class Conflict(DatelineError):
    status, code = 409, "conflict"


class StoryExists(Conflict):
    code = "story_exists"


class EntryExists(Conflict):
    code = "entry_exists"


class ClosedStory(Conflict):
    code = "story_closed"


class VersionConflict(Conflict):
    code = "version_conflict"

    def __init__(self, message: str, current_version: int) -> None:
        super().__init__(message, {"current_version": current_version})
        self.current_version = current_version


class InvalidState(Conflict):
    code = "invalid_state"


class TokenNameTaken(Conflict):
    code = "token_name_taken"


class ChainBroken(Conflict):
    code = "chain_broken"


class PayloadTooLarge(DatelineError):
    status, code = 413, "payload_too_large"


class UnsupportedMediaType(DatelineError):
    status, code = 415, "unsupported_media_type"


class InvalidEvent(DatelineError):
    status, code = 422, "invalid_event"


class InvalidRequest(DatelineError):
    status, code = 422, "invalid_request"


class IdempotencyKeyReused(DatelineError):
    status, code = 422, "idempotency_key_reused"


class RateLimited(DatelineError):
    status, code = 429, "rate_limited"


class TooManySubscriptions(DatelineError):
    status, code = 429, "too_many_subscriptions"


class PortInUse(DatelineError):
    status, code = 500, "port_in_use"


class Unreachable(DatelineError):
    status, code = 503, "unreachable"


class StoreUnavailable(Unreachable):
    code = "store_unavailable"


class ApiUnreachable(Unreachable):
    code = "api_unreachable"


class GatewayUnreachable(Unreachable):
    code = "gateway_unreachable"


class ProjectionLagging(DatelineError):
    status, code = 504, "projection_lagging"


def error_classes(root: type[DatelineError] = DatelineError) -> Iterator[type[DatelineError]]:
    """``root`` and every class below it, parents before children, in the order they are defined."""
    yield root
    for sub in root.__subclasses__():
        yield from error_classes(sub)


BY_CODE = {cls.code: cls for cls in error_classes()}
"""Each class by its ``code`` (the codes are unique in the tree)."""
BY_STATUS = {cls.status: cls for cls in reversed(list(error_classes()))}
"""Each status's first class in the tree (404 ``NotFound``, 409 ``Conflict``...), for a code the
tree does not know: reversed, so that the first one written wins."""


def from_answer(status: int, code: str, message: str, details: JsonValue = None) -> DatelineError:
    """The error an answer stands for (an API refusal, a gateway's error frame), as it was given.

    Its class is the one its ``code`` names, else the first of its ``status``, else
    ``DatelineError``: a code a newer server added still exits as its status says.
    """
    cls = BY_CODE.get(code) or BY_STATUS.get(status, DatelineError)
    error = cls.__new__(cls)  # not cls(...): VersionConflict takes its details apart
    DatelineError.__init__(error, message, details)
    if isinstance(error, VersionConflict) and isinstance(details, dict):
        current = details.get("current_version")
        if isinstance(current, int):
            error.current_version = current
    error.code, error.status = code, status  # on the instance: what the server answered
    return error
