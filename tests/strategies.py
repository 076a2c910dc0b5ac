"""Hypothesis strategies for the pure core: story histories built by running the decisions.

A history is what the write path would have appended: the story is opened, then a random sequence
of newsroom commands is parsed (``events.decide.parse_command``), decided against the facts so far
(``events.decide.decide``), sealed into the hash chain (``events.chain.seal``) and folded into the
facts (``projections.facts.apply``). Commands a decision refuses are dropped, as the API would
answer them with an error and append nothing. So every generated history obeys the contract's
rules, and any property that fails on one is a bug in a fold or in the chain, not in the strategy.
``Newsroom`` is that write path without Redis; the example tests use it too.

Everything the shell would read from the world is deterministic here (STYLE.md "The core is
pure"): ``recorded_at`` grows by one second and one microsecond per version, the actor is
``editor:jane``, the event id is ``ev-<version>`` and the server-assigned id is ``auto-<version>``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from pydantic import JsonValue

from events.base import Command, EventData
from events.chain import Envelope, seal
from events.decide import decide, parse_command, parse_open
from events.errors import DatelineError
from events.facts import StoryFacts
from events.stamp import Stamp
from projections import facts as facts_fold
from projections import story as story_fold

STORY = "syria-daily"
ACTOR = "editor:jane"
EPOCH = datetime(2026, 11, 24, 18, 50, 3, tzinfo=UTC)

PROPERTIES = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
"""Settings for the property tests: enough histories to find a broken fold, fast enough for CI."""


def recorded_at(version: int) -> str:
    """Server time of ``version``: strictly increasing, UTC, microseconds and ``Z``."""
    at = EPOCH + timedelta(seconds=version - 1, microseconds=version)
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def stamp(version: int) -> Stamp:
    """What the shell would pass into the decision of ``version``."""
    return Stamp(recorded_at=recorded_at(version), actor=ACTOR, new_id=f"auto-{version}")


@dataclass
class Newsroom:
    """One story's write path without Redis: decide, seal, fold; refusals raise and append nothing."""

    story: str = STORY
    facts: StoryFacts = field(init=False)
    envelopes: list[Envelope] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.facts = StoryFacts(self.story)

    def open(self, **body: JsonValue) -> Envelope:
        """``POST /stories``: open the story with ``body`` (a title at least)."""
        return self.run(parse_open({"story": self.story, **body}))

    def command(
        self, event_type: str, idempotency_key: str | None = None, **data: JsonValue
    ) -> Envelope:
        """``POST /stories/{story}/events``: parse ``{type, data}`` and run it."""
        return self.run(parse_command(event_type, data), idempotency_key)

    def run(self, command: Command, idempotency_key: str | None = None) -> Envelope:
        """Decide ``command`` against the facts so far, then seal and fold the event."""
        version = self.facts.version + 1
        return self.append(decide(self.facts, command, stamp(version)), idempotency_key)

    def append(self, event: EventData, idempotency_key: str | None = None) -> Envelope:
        """Seal a decided event onto the chain's head and fold it into the facts."""
        version = self.facts.version + 1
        envelope = seal(
            event_id=f"ev-{version}",
            story=self.story,
            version=version,
            type=event.TYPE,
            data=event.to_data(),
            actor=ACTOR,
            recorded_at=recorded_at(version),
            idempotency_key=idempotency_key,
            prev_hash=self.facts.head_hash,
        )
        self.facts = facts_fold.apply(self.facts, envelope)
        self.envelopes.append(envelope)
        return envelope

    @property
    def state(self) -> story_fold.StoryState:
        """The story as readers see it now."""
        return story_fold.replay(self.story, self.envelopes)


def refused_fields(error: DatelineError) -> list[str]:
    """The fields an ``invalid_event`` error's details name, in order."""
    details = error.details
    assert isinstance(details, dict)
    errors = details.get("errors")
    if isinstance(errors, list):
        return [str(e["field"]) for e in errors if isinstance(e, dict)]
    return [str(details["field"])]


def opened(*entry_ids: str) -> Newsroom:
    """An open story with one published entry per id, for example tests."""
    room = Newsroom()
    room.open(title="Syria Daily, 7 October")
    for entry_id in entry_ids:
        room.command("entry.published", entry_id=entry_id, body=f"<p>Entry {entry_id}</p>")
    return room


def refused(room: Newsroom, event_type: str, **data: JsonValue) -> DatelineError:
    """The error a refused command raises, having checked that nothing was appended."""
    before = (list(room.envelopes), room.facts)
    with pytest.raises(DatelineError) as caught:
        room.command(event_type, **data)
    assert (room.envelopes, room.facts) == before
    return caught.value


# Text that any plain-text field and the inside of a <p> accept: letters of several scripts, digits,
# spaces and harmless punctuation; never a control character, "<" or "&".
TEXT_ALPHABET = "abcdefghijklmnopqrstuvwxyz ABCXYZ 0123456789 .,;:!?'- éüçøßÅ 日本語 Русский عربي"
plain_text = st.text(alphabet=TEXT_ALPHABET, min_size=1, max_size=12)
bodies = plain_text.map(lambda text: f"<p>{text}</p>")
time_labels = st.sampled_from(["1850 GMT", "18:50", "Tuesday morning", "19h05 heure de Paris"])
TOOL_ENTRY_IDS = ("e-1", "e-2", "e-3", "update-1850")
TOOL_EMBED_IDS = ("clip", "photo", "map-1")

_slug = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)
embeds = st.one_of(
    st.tuples(st.just("image"), _slug.map(lambda path: f"https://example.org/{path}.jpg")),
    st.tuples(st.just("link"), _slug.map(lambda path: f"https://example.org/news/{path}")),
    st.tuples(
        st.just("video"),
        st.text(
            alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-",
            min_size=11,
            max_size=11,
        ).map(lambda video: f"https://www.youtube.com/watch?v={video}"),
    ),
)
"""``(kind, url)`` of an embed the allow-list takes: images and links anywhere, YouTube videos."""


def _fields(**optional: st.SearchStrategy[JsonValue]) -> st.SearchStrategy[dict[str, JsonValue]]:
    """A dict of the fields that were drawn; a field drawn as None is left out, as a tool would."""
    return st.fixed_dictionaries({name: st.none() | s for name, s in optional.items()}).map(
        lambda drawn: {name: value for name, value in drawn.items() if value is not None}
    )


_PUBLISH = _fields(headline=plain_text, key_event=st.booleans(), time_label=time_labels)
_EDIT = _fields(headline=plain_text)
_UPDATE = _fields(title=plain_text, summary=plain_text)
_CLOSE = _fields(note=plain_text)
_EMBED = _fields(caption=plain_text, alt=plain_text)
_OPEN = st.fixed_dictionaries({"title": plain_text}, optional={"summary": plain_text})
T = TypeVar("T")
_INDEX = st.integers(min_value=0, max_value=255)
_KINDS = (
    *["entry.published"] * 16,
    *["entry.edited", "entry.corrected", "entry.pinned", "embed.attached"] * 4,
    *["entry.retracted", "entry.unpinned", "embed.removed", "story.updated"] * 2,
    "story.closed",
)
"""Command types by weight: mostly publishing, and a story closes now and then, late if at all."""


def _pick(draw: st.DrawFn, options: Sequence[T]) -> T:
    """One of ``options``, shrinking towards the first (cheaper than a new ``sampled_from``)."""
    return options[draw(_INDEX) % len(options)]


def command(draw: st.DrawFn, facts: StoryFacts) -> tuple[str, dict[str, JsonValue]]:
    """One newsroom request ``(type, data)`` aimed at ``facts``: valid JSON, maybe refused.

    Targets are entries the story has, live or retracted, and now and then one it lacks.
    """
    kind = _pick(draw, _KINDS)
    entry_ids = sorted(facts.entries)  # sorted: Map order follows str hashes, which vary by run
    if kind == "entry.published":
        data = {**draw(_PUBLISH), "body": draw(bodies)}
        entry_id = _pick(draw, [None, *TOOL_ENTRY_IDS, *entry_ids])
        return kind, data if entry_id is None else {**data, "entry_id": entry_id}
    if kind == "story.updated":
        return kind, draw(_UPDATE)
    if kind == "story.closed":
        return kind, draw(_CLOSE)
    if kind == "embed.removed":  # aim at entries that have embeds, or removals rarely land
        entry_ids = [e for e in entry_ids if facts.entries[e].embeds] or entry_ids
    entry_id = _pick(draw, [*entry_ids, "ghost"])
    if kind == "entry.edited":
        return kind, {"entry_id": entry_id, "body": draw(bodies), **draw(_EDIT)}
    if kind == "entry.corrected":
        return kind, {"entry_id": entry_id, "body": draw(bodies), "note": draw(plain_text)}
    if kind == "entry.retracted":
        return kind, {"entry_id": entry_id, "note": draw(plain_text)}
    if kind == "entry.unpinned" and facts.pinned is not None and draw(st.booleans()):
        return kind, {"entry_id": facts.pinned}
    if kind in ("entry.pinned", "entry.unpinned"):
        return kind, {"entry_id": entry_id}
    entry = facts.entries.get(entry_id)
    embed_ids = sorted(entry.embeds) if entry else []
    if kind == "embed.removed":
        return kind, {"entry_id": entry_id, "embed_id": _pick(draw, [*embed_ids, "ghost"])}
    embed_kind, url = draw(embeds)
    data = {"entry_id": entry_id, "kind": embed_kind, "url": url, **draw(_EMBED)}
    embed_id = _pick(draw, [None, *TOOL_EMBED_IDS, *embed_ids])
    return kind, data if embed_id is None else {**data, "embed_id": embed_id}


@st.composite
def histories(draw: st.DrawFn, max_events: int = 40) -> list[Envelope]:
    """A story's whole history, ``story.opened`` first, at most ``max_events`` events long."""
    room = Newsroom()
    room.open(**draw(_OPEN))
    length = draw(st.integers(min_value=1, max_value=max_events))
    for _ in range(4 * length):
        if len(room.envelopes) >= length:
            break
        event_type, data = command(draw, room.facts)
        parsed = parse_command(event_type, data)  # a strategy bug if it does not parse
        key = _pick(draw, [None, None, f"key-{len(room.envelopes)}"])
        with contextlib.suppress(DatelineError):
            room.run(parsed, key)
    return list(room.envelopes)
