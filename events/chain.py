"""Canonical JSON and the SHA-256 hash chain, exactly as CONTRACT.md "Event envelope" defines.

Rules:
- canonical JSON is ``json.dumps(x, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``
  encoded as UTF-8;
- ``data_hash`` is SHA-256 (hex) of the canonical JSON of ``data``;
- ``hash`` is SHA-256 (hex) of the UTF-8 bytes of ``prev_hash`` followed by the canonical JSON of the
  envelope without ``hash`` and without ``data`` (``data_hash`` stands in for the data, so a lawful
  redaction of ``data`` keeps the chain verifying);
- ``prev_hash`` of version 1 is 64 zeros.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import orjson
from pydantic import BaseModel, ConfigDict, JsonValue

GENESIS = "0" * 64


def canonical(value: JsonValue) -> bytes:
    """The contract's canonical JSON of ``value``, as UTF-8 bytes.

    orjson writes exactly the bytes of ``json.dumps(sort_keys=True, separators=(",", ":"),
    ensure_ascii=False)`` for strings, integers up to 2**53, booleans, null, lists and objects
    (tests/events/test_chain.py checks it on generated values), ten times faster; anything else
    (floats, larger integers: never in our events, perhaps in a forged export) goes to
    ``json.dumps`` itself.
    """
    if not _plain(value):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER)
    except orjson.JSONEncodeError:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _plain(value: JsonValue) -> bool:
    """No floats anywhere in ``value`` (where orjson and json.dumps could write them apart)."""
    stack: list[JsonValue] = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is dict:
            stack.extend(item.values())  # type: ignore[union-attr]  # type(item) is dict: checked above
        elif kind is list:
            stack.extend(item)  # type: ignore[arg-type]  # type(item) is list: checked above
        elif kind is not str and kind is not int and kind is not bool and item is not None:
            return False  # a float, or something orjson might write its own way
    return True


def data_hash(data: Mapping[str, JsonValue]) -> str:
    """SHA-256 hex of the canonical JSON of an event's ``data``."""
    return hashlib.sha256(canonical(dict(data))).hexdigest()


class Envelope(BaseModel):
    """One immutable, hash-chained event as stored, returned by history and verified."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    story: str
    version: int
    type: str
    data: dict[str, JsonValue]
    data_hash: str
    actor: str
    recorded_at: str
    idempotency_key: str | None
    prev_hash: str
    hash: str

    @property
    def entry_id(self) -> str | None:
        """The entry this event is about, if any (``data.entry_id``; assigned ids are stored)."""
        value = self.data.get("entry_id")
        return value if isinstance(value, str) else None

    def link_fields(self) -> dict[str, JsonValue]:
        """The envelope without ``hash`` and ``data``: what ``hash`` covers after ``prev_hash``."""
        return {
            "id": self.id,
            "story": self.story,
            "version": self.version,
            "type": self.type,
            "data_hash": self.data_hash,
            "actor": self.actor,
            "recorded_at": self.recorded_at,
            "idempotency_key": self.idempotency_key,
            "prev_hash": self.prev_hash,
        }

    def to_json(self) -> bytes:
        """The envelope's canonical JSON: how it is stored and served."""
        return canonical(self.to_dict())

    def to_dict(self) -> dict[str, JsonValue]:
        """The envelope as a plain JSON object."""
        fields = self.link_fields()
        fields["data"] = self.data
        fields["hash"] = self.hash
        return fields


def link_hash(prev_hash: str, link_fields: Mapping[str, JsonValue]) -> str:
    """SHA-256 hex of ``prev_hash`` followed by the canonical JSON of the link fields.

    The link fields are strings, integers and null by the envelope's schema, so they skip the
    float check of ``canonical`` (a huge integer still falls back to ``json.dumps``).
    """
    fields = dict(link_fields)
    try:
        text = orjson.dumps(fields, option=orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER)
    except orjson.JSONEncodeError:
        text = canonical(fields)
    return hashlib.sha256(prev_hash.encode() + text).hexdigest()


def seal(
    *,
    event_id: str,
    story: str,
    version: int,
    type: str,
    data: Mapping[str, JsonValue],
    actor: str,
    recorded_at: str,
    idempotency_key: str | None,
    prev_hash: str,
) -> Envelope:
    """Build the envelope for a decided event, computing ``data_hash`` and ``hash``."""
    digest_of_data = data_hash(data)
    fields: dict[str, JsonValue] = {
        "id": event_id,
        "story": story,
        "version": version,
        "type": type,
        "data_hash": digest_of_data,
        "actor": actor,
        "recorded_at": recorded_at,
        "idempotency_key": idempotency_key,
        "prev_hash": prev_hash,
    }
    digest = link_hash(prev_hash, fields)
    return Envelope.model_validate(
        {
            "id": event_id,
            "story": story,
            "version": version,
            "type": type,
            "data": dict(data),
            "data_hash": digest_of_data,
            "actor": actor,
            "recorded_at": recorded_at,
            "idempotency_key": idempotency_key,
            "prev_hash": prev_hash,
            "hash": digest,
        }
    )


@dataclass(frozen=True, slots=True)
class Verification:
    """The answer of a chain walk: CONTRACT.md ``GET /stories/{story}/verify``."""

    ok: bool
    events: int
    head_hash: str
    first_bad_version: int | None


class ChainWalk:
    """Re-walk a story's chain one envelope at a time (for histories too long to hold at once).

    A version is bad when it is not the next number, its ``data_hash`` does not match its data, its
    ``prev_hash`` is not the previous event's ``hash``, or its ``hash`` does not match. The first
    bad version ends the walk; ``head_hash`` is then the last good hash.
    """

    def __init__(self) -> None:
        self.prev = GENESIS
        self.count = 0
        self.first_bad: int | None = None

    def feed(self, envelope: Envelope) -> bool:
        """Check the next envelope; False (and the walk is over) at the first bad one."""
        if self.first_bad is not None:
            return False
        self.count += 1
        bad = (
            envelope.version != self.count
            or envelope.prev_hash != self.prev
            or data_hash(envelope.data) != envelope.data_hash
            or link_hash(self.prev, envelope.link_fields()) != envelope.hash
        )
        if bad:
            self.first_bad = self.count
            return False
        self.prev = envelope.hash
        return True

    def result(self) -> Verification:
        return Verification(self.first_bad is None, self.count, self.prev, self.first_bad)


def verify(envelopes: Iterable[Envelope]) -> Verification:
    """Re-walk a story's chain from version 1 and name the first version that does not hold."""
    walk = ChainWalk()
    for envelope in envelopes:
        if not walk.feed(envelope):
            break
    return walk.result()
