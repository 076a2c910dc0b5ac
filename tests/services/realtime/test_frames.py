"""Frames out and requests in, as bytes: error frames for every refusal, client ops parsed."""

from __future__ import annotations

import orjson
import pytest

from events import errors
from events.errors import BadRequest, DatelineError
from services.realtime.frames import changes_of, error_frame, parse_request, snapshot_frame, wire


def every_error() -> list[type[DatelineError]]:
    found: list[type[DatelineError]] = []
    todo: list[type[DatelineError]] = [DatelineError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo += cls.__subclasses__()
    return found


@pytest.mark.parametrize("cls", every_error(), ids=lambda cls: cls.__name__)
def test_every_error_becomes_the_contracts_error_frame(cls: type[DatelineError]) -> None:
    """Any ``DatelineError`` is ``{"type": "error", "code", "message"}``, with its story if given."""
    error = cls.__new__(cls)  # the base's init: some subclasses take details of their own
    DatelineError.__init__(error, "what went wrong")
    assert orjson.loads(error_frame(error)) == {
        "type": "error",
        "code": cls.code,
        "message": "what went wrong",
    }
    assert orjson.loads(error_frame(error, "s"))["story"] == "s"


def test_the_gateways_refusals_carry_the_contracts_codes() -> None:
    """The codes the contract names for the websocket: bad_request, unknown_story, too many."""
    assert errors.BadRequest.code == "bad_request"
    assert errors.UnknownStory.code == "unknown_story"
    assert errors.TooManySubscriptions.code == "too_many_subscriptions"


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        ("not json", "frames are JSON objects"),
        ("[1, 2]", "frames are JSON objects"),
        ('{"story": "x"}', "a frame needs an op"),
        ('{"op": "dance"}', "unknown op 'dance'"),
        ('{"op": "subscribe"}', "subscribe needs a story id"),
        ('{"op": 5}', "op is a string"),
    ],
)
def test_a_frame_that_is_no_op_is_a_bad_request(frame: str, message: str) -> None:
    """Anything but an object naming a known op (with a story where one is needed) is refused."""
    with pytest.raises(BadRequest, match=message):
        parse_request(frame)


def test_an_op_nested_1000_deep_is_a_bad_request_not_a_recursion_error() -> None:
    """The op is never quoted by its repr: a list nested 1,000 deep (within orjson's depth
    limit) once raised RecursionError, which closed the connection with 1011."""
    with pytest.raises(BadRequest, match="op is a string"):
        parse_request('{"op": ' + "[" * 1000 + "]" * 1000 + "}")


def test_a_long_unknown_op_is_quoted_cut_short() -> None:
    """An error message quotes at most 64 characters of what the client sent."""
    with pytest.raises(BadRequest) as refused:
        parse_request(orjson.dumps({"op": "x" * 60_000}))
    assert len(refused.value.message) < 120
    assert "60,000 characters" in refused.value.message


def test_a_snapshot_frame_is_one_text_frame_of_the_contracts_snapshot() -> None:
    """A snapshot carries type, story, version and state, and ``reset`` only when it resets."""
    state: dict[str, object] = {"story": "s", "version": 7, "entries": []}
    version, frame = snapshot_frame("s", state, reset=True)  # type: ignore[arg-type]  # a plain dict
    body = b'{"type":"snapshot","story":"s","version":7,"state":' + orjson.dumps(state)
    assert (version, frame) == (7, wire(body + b',"reset":true}'))
    assert snapshot_frame("s", state, reset=False)[1] == wire(body + b"}")  # type: ignore[arg-type]  # a plain dict


def test_a_stream_entry_reads_as_the_versions_it_holds_and_nothing_else() -> None:
    """A run's fields are its versions; ``s`` and a first-layout entry's ``c``/``v`` hold none."""
    run = {b"s": b"story", b"7": b'{"version":7}', b"8": b'{"version":8}'}
    assert changes_of(run) == [(7, b'{"version":7}'), (8, b'{"version":8}')]
    assert changes_of({b"c": b'{"version":3}', b"v": b"3"}) == []
