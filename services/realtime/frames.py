"""What goes over the websocket: frames out (changes, snapshots, errors), requests in.

CONTRACT.md "Websocket gateway": JSON text frames. Server frames are unmasked and uncompressed, so
one change is framed once and the same bytes go to every subscriber. Every refusal is a
``DatelineError`` and becomes an error frame here, in one function, with the contract's code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import orjson
from pydantic import JsonValue
from websockets.frames import Frame, Opcode

from events.errors import BadRequest, DatelineError

PONG = b'{"type":"pong"}'
SHOWN = 64
"""Characters of a client's own text an error message quotes back at most."""


def wire(message: bytes) -> bytes:
    """A JSON text message as the bytes of one unmasked, uncompressed websocket frame."""
    return Frame(Opcode.TEXT, message).serialize(mask=False)


def error_frame(error: DatelineError, story: str | None = None) -> bytes:
    """Any refusal as the contract's error message (the one mapping of errors to this surface)."""
    body: dict[str, JsonValue] = {"type": "error", "code": error.code, "message": error.message}
    if story is not None:
        body["story"] = story
    return orjson.dumps(body)


def away_frame(story: str) -> bytes:
    """The notice to a subscriber that the store is away: ``store_unavailable``, with
    ``"subscribed": true`` because the subscription stays (docs/api.md "Websocket", an extension):
    changes resume in order, with no gap, once the store is back (``resumed_frame``)."""
    body: dict[str, JsonValue] = {
        "type": "error",
        "code": "store_unavailable",
        "message": "the store is unreachable: changes resume when it is back",
        "story": story,
        "subscribed": True,
    }
    return orjson.dumps(body)


def resumed_frame(story: str) -> bytes:
    """The notice that the store is back and changes flow again (after an ``away_frame``)."""
    return orjson.dumps({"type": "resumed", "story": story})


def snapshot_frame(story: str, state: dict[str, JsonValue], reset: bool) -> tuple[int, bytes]:
    """A story's first page as a snapshot message (``reset`` when it replaces what came before),
    framed, with its version."""
    version = state["version"]
    assert isinstance(version, int), "a story state carries its version"
    body: dict[str, JsonValue] = {
        "type": "snapshot",
        "story": story,
        "version": version,
        "state": state,
    }
    if reset:
        body["reset"] = True
    return version, wire(orjson.dumps(body))


def changes_of(fields: Mapping[bytes, bytes]) -> list[tuple[int, bytes]]:
    """The changes one entry of a changes stream holds, as (version, change JSON), in order.

    ``project.lua`` writes the changes of a run of versions as one entry: each version a field
    (its value the change), beside ``s`` (the story) on a partition's stream. Any other field
    (``s``, or the first layout's ``c`` and ``v``, no longer read) holds no change.
    """
    return [(int(name), change) for name, change in fields.items() if name.isdigit()]


@dataclass(frozen=True, slots=True)
class Request:
    """One client op: ``ping``, or ``subscribe`` / ``unsubscribe`` of ``story`` (``since``)."""

    op: str
    story: str = ""
    since: object = None
    """As sent: the gateway checks it once it knows the story (its error frame names it)."""


def parse_request(message: str | bytes) -> Request:
    """A client frame as its op; anything else is ``BadRequest`` (CONTRACT "Details: Websocket")."""
    try:
        request = orjson.loads(message)
    except orjson.JSONDecodeError:
        raise BadRequest("frames are JSON objects") from None
    if not isinstance(request, dict):
        raise BadRequest("frames are JSON objects")
    op = request.get("op")
    if op == "ping":
        return Request("ping")
    if op in ("subscribe", "unsubscribe"):
        story = request.get("story")
        if not isinstance(story, str):
            raise BadRequest(f"{op} needs a story id")
        return Request(op, story, request.get("since"))
    if op is None:
        raise BadRequest("a frame needs an op")
    if not isinstance(op, str):  # never its repr: a list nested 1,000 deep has none
        raise BadRequest("op is a string: subscribe, unsubscribe or ping")
    raise BadRequest(f"unknown op {shown(op)}")


def shown(text: str) -> str:
    """A client's text quoted in an error message, cut to ``SHOWN`` characters: an error frame
    answers a 64 KiB frame in a few dozen bytes, never by echoing it."""
    if len(text) <= SHOWN:
        return repr(text)
    return f"{text[:SHOWN]!r}… ({len(text):,} characters)"
