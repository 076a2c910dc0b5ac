"""Every failure a caller can act on, one class each.

Each class carries the HTTP status and the contract's error ``code`` (CONTRACT.md, "Errors"); an
instance carries ``message`` and ``details``. The API turns any ``DatelineError`` into
``{"error": {"code", "message", "details"}}``, the gateway sends the same code in its error frame,
and the CLI prints the message and exits 2. Any other exception is a bug (500)::

    DatelineError                 500 internal
    ├── BadRequest                400 bad_request
    ├── Unauthorized              401 unauthorized
    ├── Forbidden                 403 forbidden
    ├── NotFound                  404
    │   ├── UnknownStory              unknown_story
    │   ├── UnknownEntry              unknown_entry
    │   ├── UnknownEmbed              unknown_embed
    │   └── UnknownToken              unknown_token
    ├── Conflict                  409
    │   ├── StoryExists               story_exists
    │   ├── EntryExists               entry_exists
    │   ├── ClosedStory               story_closed
    │   ├── VersionConflict           version_conflict (details: current_version)
    │   ├── InvalidState              invalid_state
    │   └── TokenNameTaken            token_name_taken
    ├── PayloadTooLarge           413 payload_too_large
    ├── UnsupportedMediaType      415 unsupported_media_type
    ├── InvalidEvent              422 invalid_event (details: what was refused)
    ├── InvalidRequest            422 invalid_request
    ├── IdempotencyKeyReused      422 idempotency_key_reused
    ├── RateLimited               429 rate_limited
    ├── StoreUnavailable          503 store_unavailable
    └── ProjectionLagging         504 projection_lagging
"""

from __future__ import annotations

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


class StoreUnavailable(DatelineError):
    status, code = 503, "store_unavailable"


class ProjectionLagging(DatelineError):
    status, code = 504, "projection_lagging"
