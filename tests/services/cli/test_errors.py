"""The command line's one error mapping: every class of the error tree, its stderr and exit code."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import typer

from events import errors
from events.errors import DatelineError, from_answer
from services.cli.errors import exit_code, lines, reported

EXIT_CODES: dict[type[DatelineError], int] = {
    errors.DatelineError: 3,
    errors.BadRequest: 2,
    errors.UsageError: 2,
    errors.Unauthorized: 2,
    errors.Forbidden: 2,
    errors.NotFound: 2,
    errors.UnknownStory: 2,
    errors.UnknownEntry: 2,
    errors.UnknownEmbed: 2,
    errors.UnknownToken: 2,
    errors.MethodNotAllowed: 2,
    errors.Conflict: 2,
    errors.StoryExists: 2,
    errors.EntryExists: 2,
    errors.ClosedStory: 2,
    errors.VersionConflict: 2,
    errors.InvalidState: 2,
    errors.TokenNameTaken: 2,
    errors.ChainBroken: 1,
    errors.PayloadTooLarge: 2,
    errors.UnsupportedMediaType: 2,
    errors.InvalidEvent: 2,
    errors.InvalidRequest: 2,
    errors.IdempotencyKeyReused: 2,
    errors.RateLimited: 3,
    errors.TooManySubscriptions: 3,
    errors.PortInUse: 2,
    errors.Unreachable: 3,
    errors.StoreUnavailable: 3,
    errors.ApiUnreachable: 3,
    errors.GatewayUnreachable: 3,
    errors.ProjectionLagging: 3,
}
"""What ``dateline`` exits with for each class (docs/cli.md "Exit codes"): 1 a check failed, 2
refused or a usage error, 3 no answer, 5xx or 429 after the retries."""


def below(cls: type[DatelineError]) -> Iterator[type[DatelineError]]:
    """Every class under ``cls``, however deep."""
    for sub in cls.__subclasses__():
        yield sub
        yield from below(sub)


EVERY = [DatelineError, *below(DatelineError)]


def raised(cls: type[DatelineError], message: str) -> DatelineError:
    """An instance as the command line raises it."""
    if cls is errors.VersionConflict:
        return errors.VersionConflict(message, 3)
    return cls(message)


def test_every_error_class_has_an_exit_code() -> None:
    """The tree and the table name the same classes: a new class needs its exit code decided."""
    assert set(EVERY) == set(EXIT_CODES)


def test_every_code_names_one_class() -> None:
    """An answer's code finds its class: no two classes share a code."""
    assert len({cls.code for cls in EVERY}) == len(EVERY)


@pytest.mark.parametrize("cls", EVERY, ids=lambda c: c.__name__)
def test_an_error_the_cli_raises_is_its_message_and_its_exit_code(
    cls: type[DatelineError], capsys: pytest.CaptureFixture[str]
) -> None:
    """stderr says ``error: <message>`` (nothing for a failed check); the exit code is the table's."""
    error = raised(cls, "it went wrong")
    with pytest.raises(typer.Exit) as ended, reported():
        raise error
    assert ended.value.exit_code == exit_code(error) == EXIT_CODES[cls]
    expected = [] if cls is errors.ChainBroken else ["error: it went wrong"]
    if cls is errors.VersionConflict:
        expected.append('details: {"current_version":3}')
    assert lines(error) == expected
    assert capsys.readouterr().err.splitlines() == expected


@pytest.mark.parametrize("cls", EVERY, ids=lambda c: c.__name__)
def test_an_answer_of_the_api_becomes_the_class_of_its_code(cls: type[DatelineError]) -> None:
    """``{"error": {code, ...}}`` with the class's status is that class, shown with code and status."""
    error = from_answer(cls.status, cls.code, "refused", None)
    assert type(error) is cls
    assert (error.code, error.status, error.message) == (cls.code, cls.status, "refused")
    assert exit_code(error) == EXIT_CODES[cls]
    assert lines(error) == [f"error: refused ({cls.code}, {cls.status})"]


@pytest.mark.parametrize(
    ("status", "cls", "code"),
    [
        (404, errors.NotFound, 2),
        (409, errors.Conflict, 2),
        (400, errors.BadRequest, 2),
        (418, errors.DatelineError, 2),
        (503, errors.Unreachable, 3),
    ],
)
def test_an_unknown_code_maps_by_its_status(
    status: int, cls: type[DatelineError], code: int
) -> None:
    """A code the tree does not know keeps its code and status, and exits as its status says."""
    error = from_answer(status, f"http_{status}", "odd", None)
    assert type(error) is cls
    assert exit_code(error) == code
    assert lines(error) == [f"error: odd (http_{status}, {status})"]


def test_refused_html_is_named_after_the_message() -> None:
    """An invalid_event's ``refused`` list is one line naming the field; other details follow."""
    details = {"field": "body", "refused": ["tag <script>", "attribute onclick"], "entry": "e1"}
    error = from_answer(
        422, "invalid_event", "body contains HTML outside the allowed subset", details
    )
    assert lines(error) == [
        "error: body contains HTML outside the allowed subset (invalid_event, 422)",
        "refused in body: tag <script>; attribute onclick",
        'details: {"entry":"e1"}',
    ]


def test_schema_errors_are_listed_one_a_line() -> None:
    """An invalid_request's ``errors`` show as ``  field: problem`` lines."""
    details = {"errors": [{"field": "data.body", "problem": "Field required"}]}
    error = from_answer(422, "invalid_request", "the request does not match its schema", details)
    assert lines(error) == [
        "error: the request does not match its schema (invalid_request, 422)",
        "  data.body: Field required",
    ]


def test_a_version_conflict_keeps_the_current_version() -> None:
    """The answer's details stay as sent and give the conflict its ``current_version``."""
    error = from_answer(
        409, "version_conflict", "story is at version 10, not 3", {"current_version": 10}
    )
    assert isinstance(error, errors.VersionConflict)
    assert error.current_version == 10
    assert lines(error) == [
        "error: story is at version 10, not 3 (version_conflict, 409)",
        'details: {"current_version":10}',
    ]


def test_anything_else_is_a_bug_and_keeps_its_traceback() -> None:
    """An exception outside the tree is not turned into an exit code."""
    with pytest.raises(KeyError), reported():
        raise KeyError("bug")
