"""The story state readers see, folded from events (CONTRACT.md "Story state").

Rules of the fold (one ``apply`` per event, O(1) in the story's length: entries live in a
persistent map, so every earlier state stays valid and cheap to keep):
- every event sets the story's ``version`` and ``updated_at`` (its ``recorded_at``);
- an entry's ``updated_at`` moves on publish, edit, correction, retraction and embed changes,
  not on pin or unpin;
- a correction replaces the body and adds ``{note, at, version, diff}`` to ``corrections``
  (``diff``: what it changed in the visible text, word by word); an edit replaces body (and
  headline when given) silently;
- a retraction nulls the body, drops the embeds and its corrections' diffs (they hold its
  text; the notes stay), leaves the key-events list, and takes the pin away if the entry held
  it (a tombstone is never pinned on top);
- pinning another entry moves the pin.

``render`` gives the contract's JSON: entries newest first (by the version that published them),
paged by ``before``; ``key_events`` newest first.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import reduce
from typing import Any, Literal, NamedTuple

from immutables import Map
from pydantic import JsonValue

from events.chain import Envelope
from events.embeds import EmbedKind
from projections.wordiff import Diff, word_diff

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


class Note(NamedTuple):
    """A correction or retraction note as readers see it; a correction's also says, word by
    word, what it changed in the text readers saw (``diff``, ``projections.wordiff``)."""

    note: str
    at: str
    version: int
    diff: Diff | None = None

    def to_json(self) -> dict[str, JsonValue]:
        out: dict[str, JsonValue] = {"note": self.note, "at": self.at, "version": self.version}
        if self.diff is not None:
            out["diff"] = [[op, text] for op, text in self.diff]
        return out

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Note:
        diff = value.get("diff")
        return cls(
            value["note"],
            value["at"],
            value["version"],
            None if diff is None else tuple((op, text) for op, text in diff),
        )


class Embed(NamedTuple):
    """A video, image, social post, map or link on an entry."""

    embed_id: str
    kind: EmbedKind
    url: str
    caption: str | None = None
    alt: str | None = None

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "embed_id": self.embed_id,
            "kind": self.kind,
            "url": self.url,
            "caption": self.caption,
            "alt": self.alt,
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Embed:
        return cls(value["embed_id"], value["kind"], value["url"], value["caption"], value["alt"])


class Entry(NamedTuple):
    """One entry of a story, after every event so far."""

    entry_id: str
    body: str | None
    published_at: str
    updated_at: str
    published_version: int
    headline: str | None = None
    time_label: str | None = None
    key_event: bool = False
    status: Literal["published", "retracted"] = "published"
    retraction: Note | None = None
    corrections: tuple[Note, ...] = ()
    embeds: tuple[Embed, ...] = ()

    def to_json(self) -> dict[str, JsonValue]:
        """The contract's entry object (plus ``published_version``, the paging key)."""
        return {
            "entry_id": self.entry_id,
            "headline": self.headline,
            "body": self.body,
            "time_label": self.time_label,
            "key_event": self.key_event,
            "published_at": self.published_at,
            "updated_at": self.updated_at,
            "status": self.status,
            "retraction": self.retraction.to_json() if self.retraction else None,
            "corrections": [c.to_json() for c in self.corrections],
            "embeds": [e.to_json() for e in self.embeds],
            "published_version": self.published_version,
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Entry:
        """Back from ``to_json`` (the projector keeps entries in Redis as that JSON)."""
        retraction = value["retraction"]
        return cls(
            entry_id=value["entry_id"],
            body=value["body"],
            published_at=value["published_at"],
            updated_at=value["updated_at"],
            published_version=value["published_version"],
            headline=value["headline"],
            time_label=value["time_label"],
            key_event=value["key_event"],
            status=value["status"],
            retraction=Note.from_json(retraction) if retraction else None,
            corrections=tuple(Note.from_json(c) for c in value["corrections"]),
            embeds=tuple(Embed.from_json(e) for e in value["embeds"]),
        )

    @property
    def is_key_event(self) -> bool:
        """Listed under key events: marked so and not retracted."""
        return self.key_event and self.status == "published"


class StoryState(NamedTuple):
    """A story as readers see it at ``version``."""

    story: str
    version: int = 0
    title: str = ""
    summary: str | None = None
    status: Literal["live", "closed"] = "live"
    closed_note: str | None = None
    updated_at: str | None = None
    pinned: str | None = None
    entries: Map[str, Entry] = Map()  # immutable, so one shared empty map is safe

    @classmethod
    def from_meta(
        cls, meta: dict[str, Any], pinned: str | None, entries: Map[str, Entry] | None = None
    ) -> StoryState:
        """Back from ``meta_json`` (kept by the projector and in checkpoints), with some entries."""
        return cls(
            story=meta["story"],
            version=meta["version"],
            title=meta["title"],
            summary=meta["summary"],
            status=meta["status"],
            closed_note=meta["closed_note"],
            updated_at=meta["updated_at"],
            pinned=pinned,
            entries=entries if entries is not None else Map(),
        )

    def meta_json(self) -> dict[str, JsonValue]:
        """The story's own fields, without pin, key events and entries."""
        return {
            "story": self.story,
            "title": self.title,
            "summary": self.summary,
            "status": self.status,
            "closed_note": self.closed_note,
            "version": self.version,
            "updated_at": self.updated_at,
        }


def _moved(
    state: StoryState, version: int, at: str, entries: Map[str, Entry], pinned: str | None
) -> StoryState:
    """The story after an entry event (constructed directly: this runs for every event)."""
    return StoryState(
        state.story,
        version,
        state.title,
        state.summary,
        state.status,
        state.closed_note,
        at,
        pinned,
        entries,
    )


def _revised(
    entry: Entry,
    at: str,
    body: str | None,
    headline: str | None,
    corrections: tuple[Note, ...],
    embeds: tuple[Embed, ...],
    retraction: Note | None = None,
) -> Entry:
    """The entry after a change; a retraction note makes it retracted."""
    return Entry(
        entry.entry_id,
        body,
        entry.published_at,
        at,
        entry.published_version,
        headline,
        entry.time_label,
        entry.key_event,
        "retracted" if retraction is not None else entry.status,
        retraction or entry.retraction,
        corrections,
        embeds,
    )


def _text(data: dict[str, JsonValue], key: str) -> str:
    value = data[key]
    if not isinstance(value, str):  # the decisions stored a string: anything else is a bug
        raise TypeError(f"{key} is not a string")
    return value


def _maybe(data: dict[str, JsonValue], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) else None


def _kind(data: dict[str, JsonValue]) -> EmbedKind:
    value = data["kind"]
    if value not in ("video", "image", "social", "map", "link"):
        raise TypeError(f"unknown embed kind {value!r}")
    return value  # type: ignore[return-value]  # narrowed by the membership test


def apply(state: StoryState, envelope: Envelope) -> StoryState:
    """Fold one event into the state: the next state, the given one untouched.

    Reads the stored ``data`` directly (it was built by a decision and its schema checked when
    written), so a replay folds without validating every event again.
    """
    kind = envelope.type
    data = envelope.data
    at = envelope.recorded_at
    version = envelope.version
    entries = state.entries
    if kind == "entry.published":
        entry = Entry(
            entry_id=_text(data, "entry_id"),
            body=_text(data, "body"),
            headline=_maybe(data, "headline"),
            time_label=_maybe(data, "time_label"),
            key_event=data.get("key_event") is True,
            published_at=at,
            updated_at=at,
            published_version=version,
        )
        return _moved(state, version, at, entries.set(entry.entry_id, entry), state.pinned)
    if kind == "entry.edited":
        entry = entries[_text(data, "entry_id")]
        headline = _maybe(data, "headline")
        headline = headline if headline is not None else entry.headline
        entry = _revised(entry, at, _text(data, "body"), headline, entry.corrections, entry.embeds)
        return _moved(state, version, at, entries.set(entry.entry_id, entry), state.pinned)
    if kind == "entry.corrected":
        entry = entries[_text(data, "entry_id")]
        body = _text(data, "body")
        changed = word_diff(entry.body or "", body)
        notes = (*entry.corrections, Note(_text(data, "note"), at, version, changed))
        entry = _revised(entry, at, body, entry.headline, notes, entry.embeds)
        return _moved(state, version, at, entries.set(entry.entry_id, entry), state.pinned)
    if kind == "entry.retracted":
        entry = entries[_text(data, "entry_id")]
        note = Note(_text(data, "note"), at, version)
        notes = tuple(c._replace(diff=None) for c in entry.corrections)  # no trace of its text
        entry = _revised(entry, at, None, entry.headline, notes, (), note)
        pinned = None if state.pinned == entry.entry_id else state.pinned
        return _moved(state, version, at, entries.set(entry.entry_id, entry), pinned)
    if kind == "entry.pinned":
        return _moved(state, version, at, entries, _text(data, "entry_id"))
    if kind == "entry.unpinned":
        return _moved(state, version, at, entries, None)
    if kind == "embed.attached":
        entry = entries[_text(data, "entry_id")]
        embed = Embed(
            _text(data, "embed_id"),
            _kind(data),
            _text(data, "url"),
            _maybe(data, "caption"),
            _maybe(data, "alt"),
        )
        entry = _revised(
            entry, at, entry.body, entry.headline, entry.corrections, (*entry.embeds, embed)
        )
        return _moved(state, version, at, entries.set(entry.entry_id, entry), state.pinned)
    if kind == "embed.removed":
        entry = entries[_text(data, "entry_id")]
        gone = _text(data, "embed_id")
        kept = tuple(e for e in entry.embeds if e.embed_id != gone)
        entry = _revised(entry, at, entry.body, entry.headline, entry.corrections, kept)
        return _moved(state, version, at, entries.set(entry.entry_id, entry), state.pinned)
    if kind == "story.opened":
        return state._replace(
            title=_text(data, "title"),
            summary=_maybe(data, "summary"),
            version=version,
            updated_at=at,
        )
    if kind == "story.updated":
        title = _maybe(data, "title") or state.title
        summary = _maybe(data, "summary")
        summary = summary if summary is not None else state.summary
        return state._replace(title=title, summary=summary, version=version, updated_at=at)
    if kind == "story.closed":
        return state._replace(
            status="closed", closed_note=_maybe(data, "note"), version=version, updated_at=at
        )
    raise TypeError(f"no fold for event type {kind!r}")  # a bug: decide() allowed it


def replay(
    story: str, envelopes: Iterable[Envelope], state: StoryState | None = None
) -> StoryState:
    """Fold events in version order, from ``state`` or from nothing."""
    return reduce(apply, envelopes, state or StoryState(story))


def newest_first(entries: Iterable[Entry]) -> list[Entry]:
    """Entries in reading order: the latest published on top."""
    return sorted(entries, key=lambda e: e.published_version, reverse=True)


def key_event_item(entry: Entry) -> dict[str, JsonValue]:
    """One item of the key-events list (``published_version`` orders it)."""
    return {
        "entry_id": entry.entry_id,
        "headline": entry.headline,
        "published_version": entry.published_version,
    }


def key_events_json(entries: Iterable[Entry]) -> list[JsonValue]:
    """The key-events list: key entries not retracted, newest first."""
    return [key_event_item(e) for e in newest_first(entries) if e.is_key_event]


def with_key_event(key_events: list[JsonValue], entry: Entry) -> list[JsonValue]:
    """The key-events list after ``entry`` changed, without the rest of the story at hand."""
    kept = [k for k in key_events if isinstance(k, dict) and k["entry_id"] != entry.entry_id]
    if entry.is_key_event:
        at = 0
        while at < len(kept) and _published(kept[at]) > entry.published_version:
            at += 1
        kept.insert(at, key_event_item(entry))
    return list(kept)


def _published(item: dict[str, JsonValue]) -> int:
    value = item["published_version"]
    return value if isinstance(value, int) else 0


def story_meta(
    meta: dict[str, JsonValue], pinned: dict[str, JsonValue] | None, key_events: list[JsonValue]
) -> dict[str, JsonValue]:
    """The state without ``entries`` and ``next_before`` (the websocket's ``story_meta``)."""
    return {**meta, "pinned": pinned, "key_events": key_events}


def page(
    meta: dict[str, JsonValue],
    pinned: dict[str, JsonValue] | None,
    key_events: list[JsonValue],
    entries: list[dict[str, JsonValue]],
    limit: int,
) -> dict[str, JsonValue]:
    """Assemble the contract's story-state JSON from its parts (entry objects as ``to_json``).

    ``entries`` are newest first and may hold one more than ``limit``: that extra one only says a
    next page exists, and ``next_before`` is the cursor to it. The API builds the same page from
    what the projector stored, so both paths answer alike.
    """
    shown = entries[:limit]
    more = len(entries) > limit
    return {
        **story_meta(meta, pinned, key_events),
        "entries": list(shown),
        "next_before": str(shown[-1]["published_version"]) if more and shown else None,
    }


def render(
    state: StoryState, limit: int = DEFAULT_LIMIT, before: int | None = None
) -> dict[str, JsonValue]:
    """The state as ``GET /stories/{story}`` answers it: one page of entries."""
    ordered = newest_first(state.entries.values())
    if before is not None:
        ordered = [e for e in ordered if e.published_version < before]
    pinned = state.entries.get(state.pinned) if state.pinned else None
    return page(
        state.meta_json(),
        pinned.to_json() if pinned else None,
        key_events_json(state.entries.values()),
        [e.to_json() for e in ordered[: limit + 1]],
        limit,
    )
