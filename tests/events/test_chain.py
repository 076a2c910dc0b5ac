"""The hash chain: canonical JSON, ``data_hash`` and ``hash`` as CONTRACT.md "Event envelope" defines
them, and ``verify`` naming the first version that does not hold."""

from __future__ import annotations

import hashlib
import json

from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pydantic import JsonValue

from events.chain import GENESIS, Envelope, canonical, data_hash, seal, verify
from tests.strategies import PROPERTIES, Newsroom, histories


def contract_json(value: JsonValue) -> bytes:
    """Canonical JSON, written out as the contract spells it."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


OPENED: dict[str, JsonValue] = {"title": "Syria Daily, 7 October", "summary": "Live from Aleppo"}


def sealed(data: dict[str, JsonValue] = OPENED, idempotency_key: str | None = None) -> Envelope:
    """Version 1 of a story, sealed from fixed fields."""
    return seal(
        event_id="ev-1",
        story="syria-daily",
        version=1,
        type="story.opened",
        data=data,
        actor="editor:jane",
        recorded_at="2026-11-24T18:50:03.000001Z",
        idempotency_key=idempotency_key,
        prev_hash=GENESIS,
    )


def test_canonical_json_is_the_contracts_json_dumps_for_non_ascii_data() -> None:
    """Canonical JSON keeps non-ASCII text as UTF-8, sorts keys and drops every space."""
    data: JsonValue = {
        "title": "Сирия: день 7 — «прямой эфир»",
        "body": "<p>Alep, 18h50 : l’armée dit avoir repris le quartier. 日本語 عربي</p>",
        "nested": {"z": [1, 2, {"é": None}], "a": True},
    }
    assert canonical(data) == contract_json(data)
    assert b"\\u" not in canonical(data)
    assert "«прямой эфир»".encode() in canonical(data)


def test_version_one_links_to_sixty_four_zeros() -> None:
    """The first event of every story has a prev_hash of 64 zeros."""
    room = Newsroom()
    opened = room.open(title="Syria Daily")
    assert GENESIS == "0" * 64
    assert opened.version == 1
    assert opened.prev_hash == "0" * 64


def test_data_hash_and_hash_recomputed_by_hand_match_seal() -> None:
    """data_hash is SHA-256 of the data's canonical JSON; hash covers prev_hash then the rest."""
    envelope = sealed(data={"title": "Syria Daily — 7 октября", "summary": "Live"})
    expected_data_hash = hashlib.sha256(
        contract_json({"title": "Syria Daily — 7 октября", "summary": "Live"})
    ).hexdigest()
    without_hash_and_data = {
        "id": "ev-1",
        "story": "syria-daily",
        "version": 1,
        "type": "story.opened",
        "data_hash": expected_data_hash,
        "actor": "editor:jane",
        "recorded_at": "2026-11-24T18:50:03.000001Z",
        "idempotency_key": None,
        "prev_hash": GENESIS,
    }
    expected_hash = hashlib.sha256(
        GENESIS.encode("utf-8") + contract_json(without_hash_and_data)
    ).hexdigest()
    assert envelope.data_hash == expected_data_hash
    assert envelope.data_hash == data_hash(envelope.data)
    assert envelope.hash == expected_hash


def test_the_stored_envelope_has_exactly_the_contracts_fields() -> None:
    """An envelope as stored and served is the contract's object, in canonical JSON."""
    envelope = sealed(idempotency_key="k-1")
    stored = json.loads(envelope.to_json())
    assert set(stored) == {
        "id",
        "story",
        "version",
        "type",
        "data",
        "data_hash",
        "actor",
        "recorded_at",
        "idempotency_key",
        "prev_hash",
        "hash",
    }
    assert envelope.to_json() == contract_json(stored)
    assert Envelope.model_validate_json(envelope.to_json()) == envelope


def test_the_hash_covers_the_data_only_through_data_hash() -> None:
    """Replacing the data but keeping data_hash leaves hash unchanged: redaction keeps the link."""
    envelope = sealed()
    redacted = envelope.model_copy(update={"data": {}})
    assert redacted.link_fields() == envelope.link_fields()
    assert sealed(data={"title": "Other"}).hash != envelope.hash


@PROPERTIES
@given(histories())
def test_every_generated_history_verifies(envelopes: list[Envelope]) -> None:
    """A history the decisions built verifies whole, up to its last hash."""
    result = verify(envelopes)
    assert result.ok
    assert result.events == len(envelopes)
    assert result.head_hash == envelopes[-1].hash
    assert result.first_bad_version is None


def _tamper(envelope: Envelope, how: str) -> Envelope:
    if how == "data":
        return envelope.model_copy(update={"data": {**envelope.data, "tampered": True}})
    if how == "prev_hash":
        return envelope.model_copy(update={"prev_hash": hashlib.sha256(b"forged").hexdigest()})
    if how == "recorded_at":
        return envelope.model_copy(update={"recorded_at": "2030-01-01T00:00:00.000000Z"})
    if how == "actor":
        return envelope.model_copy(update={"actor": "editor:mallory"})
    if how == "hash":
        return envelope.model_copy(update={"hash": hashlib.sha256(b"forged").hexdigest()})
    raise AssertionError(how)


@PROPERTIES
@given(histories(), st.data())
def test_verify_names_the_first_tampered_version(
    envelopes: list[Envelope], data: st.DataObject
) -> None:
    """Changing one event's data, links or fields, or deleting one, is found at that version."""
    hows = ["data", "prev_hash", "recorded_at", "actor", "hash"]
    if len(envelopes) > 1:
        hows.append("delete")
    how = data.draw(st.sampled_from(hows), label="how")
    # Deleting the last event leaves a shorter chain that still holds: only the store's head
    # can tell it was cut, so deletion is tried on every event but the last.
    last = len(envelopes) - 2 if how == "delete" else len(envelopes) - 1
    index = data.draw(st.integers(min_value=0, max_value=last), label="index")
    if how == "delete":
        tampered = envelopes[:index] + envelopes[index + 1 :]
    else:
        tampered = [*envelopes[:index], _tamper(envelopes[index], how), *envelopes[index + 1 :]]
    result = verify(tampered)
    assert not result.ok
    assert result.first_bad_version == index + 1
    assert result.head_hash == (envelopes[index - 1].hash if index else GENESIS)


@PROPERTIES
@given(histories(), st.data())
def test_swapping_two_events_is_found_at_the_first_of_them(
    envelopes: list[Envelope], data: st.DataObject
) -> None:
    """Reordering history breaks the chain where the first moved event now stands."""
    assume(len(envelopes) >= 2)
    first = data.draw(st.integers(min_value=0, max_value=len(envelopes) - 2), label="first")
    second = data.draw(st.integers(min_value=first + 1, max_value=len(envelopes) - 1))
    swapped = list(envelopes)
    swapped[first], swapped[second] = swapped[second], swapped[first]
    assert verify(swapped).first_bad_version == first + 1


def test_an_empty_history_verifies_with_the_genesis_head() -> None:
    """A story with no events has nothing to contradict: ok, zero events, head 64 zeros."""
    result = verify([])
    assert (result.ok, result.events, result.head_hash, result.first_bad_version) == (
        True,
        0,
        GENESIS,
        None,
    )


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(st.characters(blacklist_categories=("Cs",))),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(st.characters(blacklist_categories=("Cs",)), max_size=6), inner, max_size=4
        )
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(_json)
def test_canonical_json_is_byte_for_byte_the_contracts_json_dumps(value: JsonValue) -> None:
    """Whatever the value, canonical() writes exactly what the contract's json.dumps writes."""
    expected = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical(value) == expected.encode()
