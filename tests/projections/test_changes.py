"""The change frames: what each event tells a subscriber, and what following them gives."""

from __future__ import annotations

from hypothesis import given

from events.chain import Envelope
from projections.changes import View, follow, step
from projections.story import MAX_LIMIT, StoryState, apply, render
from tests.strategies import PROPERTIES, STORY, histories

EVERYTHING = 10_000


@PROPERTIES
@given(histories())
def test_following_the_change_frames_gives_the_replayed_state_at_every_version(
    history: list[Envelope],
) -> None:
    """A subscriber folding the frames holds, at each version, exactly what a replay renders."""
    view = View(StoryState(STORY))
    state = StoryState(STORY)
    held = render(state, EVERYTHING)
    for envelope in history:
        view, change = step(view, envelope)
        state = apply(state, envelope)
        held = follow(held, change)
        assert held == render(state, EVERYTHING)


@PROPERTIES
@given(histories())
def test_a_frame_carries_the_whole_entry_and_story_meta_only_when_the_story_changed(
    history: list[Envelope],
) -> None:
    """Entry events carry the entry after the change; story_meta comes with story-level changes."""
    view = View(StoryState(STORY))
    for envelope in history:
        before = render(view.state, MAX_LIMIT)
        view, change = step(view, envelope)
        after = render(view.state, MAX_LIMIT)
        assert change["version"] == envelope.version
        assert change["event"] == envelope.type
        entry_id = envelope.data.get("entry_id")
        if isinstance(entry_id, str):
            assert change["entry"] == view.state.entries[entry_id].to_json()
        story_level = {k: v for k, v in after.items() if k not in ("entries", "next_before")}
        old_level = {k: v for k, v in before.items() if k not in ("entries", "next_before")}
        moved = {k for k in story_level if story_level[k] != old_level.get(k)}
        if moved - {"version", "updated_at"}:
            assert change["story_meta"] == story_level
