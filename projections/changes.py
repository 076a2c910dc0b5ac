"""What each event changes, as readers' browsers receive it (CONTRACT "Websocket gateway").

``step`` folds one event like ``projections.story.apply`` and also says what changed: the whole
entry after the change, and ``story_meta`` where the story itself changed (its own fields, the pin,
the pinned entry, or the key-events list). It works on a partial view (only the entries the events
touch, plus the pinned entry and key-events list kept beside them), so the projector never loads a
whole story.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import JsonValue

from events.chain import Envelope
from projections.story import StoryState, apply, story_meta, with_key_event

STORY_LEVEL = frozenset(
    {"story.opened", "story.updated", "story.closed", "entry.pinned", "entry.unpinned"}
)


@dataclass(frozen=True, slots=True)
class View:
    """A story's state (possibly only some entries) with its pinned entry and key-events list."""

    state: StoryState
    pinned: dict[str, JsonValue] | None = None
    key_events: tuple[JsonValue, ...] = ()

    def meta(self) -> dict[str, JsonValue]:
        return story_meta(self.state.meta_json(), self.pinned, list(self.key_events))


def step(view: View, envelope: Envelope) -> tuple[View, dict[str, JsonValue]]:
    """Fold one event into the view and return the ``change`` message it makes."""
    before = view.state
    after = apply(before, envelope)
    pinned, key_events = view.pinned, view.key_events
    meta_changed = envelope.type in STORY_LEVEL
    entry_json: dict[str, JsonValue] | None = None
    entry_id = envelope.data.get("entry_id")
    if isinstance(entry_id, str) and entry_id in after.entries:
        entry = after.entries[entry_id]
        entry_json = entry.to_json()
        was = before.entries.get(entry_id)
        if entry.is_key_event or (was is not None and was.is_key_event):  # else the list stays
            updated = tuple(with_key_event(list(key_events), entry))
            if updated != key_events:
                key_events, meta_changed = updated, True
    if after.pinned != before.pinned or (after.pinned is not None and after.pinned == entry_id):
        pinned = after.entries[after.pinned].to_json() if after.pinned else None
        meta_changed = True
    view = View(after, pinned, key_events)
    return view, {
        "type": "change",
        "story": after.story,
        "version": after.version,
        "event": envelope.type,
        "entry": entry_json,
        "story_meta": view.meta() if meta_changed else None,
    }


def follow(state: dict[str, JsonValue], change: dict[str, JsonValue]) -> dict[str, JsonValue]:
    """What a subscriber holds after one ``change`` frame, from a state with every entry.

    The reader page and ``dateline tail`` do this; audit tests check that following the frames
    gives exactly the state a replay gives at each version.
    """
    out = dict(state)
    out["version"] = change["version"]
    entry = change.get("entry")
    if isinstance(entry, dict):
        kept = [
            e for e in _objects(out.get("entries")) if e.get("entry_id") != entry.get("entry_id")
        ]
        kept.append(entry)
        kept.sort(key=_published, reverse=True)
        out["entries"] = list(kept)
        out["updated_at"] = entry["updated_at"]
    meta = change.get("story_meta")
    if isinstance(meta, dict):  # last: a pin moves the story's time, not the entry's
        out.update(meta)
    return out


def _objects(value: JsonValue) -> list[dict[str, JsonValue]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _published(entry: dict[str, JsonValue]) -> int:
    value = entry.get("published_version")
    return value if isinstance(value, int) else 0
