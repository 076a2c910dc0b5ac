"""The decision facts fold: what the write path keeps per story, and that it never disagrees with
what readers see (projections/facts.py, projections/story.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from events.chain import GENESIS, Envelope
from events.facts import EntryFacts, StoryFacts
from projections import facts, story
from tests.strategies import PROPERTIES, STORY, histories, opened

IMAGE = "https://example.org/aleppo-citadel.jpg"


def folded(envelopes: list[Envelope]) -> list[StoryFacts]:
    """The facts before any event, then after each one, folding one event at a time."""
    steps = [StoryFacts(STORY)]
    for envelope in envelopes:
        steps.append(facts.apply(steps[-1], envelope))
    return steps


@PROPERTIES
@given(histories())
def test_replaying_any_prefix_gives_the_facts_reached_at_that_version(
    envelopes: list[Envelope],
) -> None:
    """replay(events[:n]) is exactly what the one-at-a-time fold had after n events."""
    steps = folded(envelopes)
    for n in range(len(envelopes) + 1):
        assert facts.replay(STORY, envelopes[:n]) == steps[n]


@PROPERTIES
@given(histories(), st.data())
def test_facts_resume_from_any_earlier_facts(
    envelopes: list[Envelope], data: st.DataObject
) -> None:
    """The write path can keep facts in memory and fold only what is new."""
    n = data.draw(st.integers(min_value=0, max_value=len(envelopes)), label="n")
    middle = facts.replay(STORY, envelopes[:n])
    assert facts.replay(STORY, envelopes[n:], middle) == facts.replay(STORY, envelopes)


@PROPERTIES
@given(histories())
def test_the_facts_head_is_the_last_events_version_and_hash(envelopes: list[Envelope]) -> None:
    """The next append links to the facts' head_hash at version + 1."""
    for envelope, after in zip(envelopes, folded(envelopes)[1:], strict=True):
        assert (after.version, after.head_hash) == (envelope.version, envelope.hash)


@PROPERTIES
@given(histories())
def test_facts_agree_with_what_readers_see_at_every_version(envelopes: list[Envelope]) -> None:
    """Version, status, pin, each entry's status and embed ids are the same in both folds."""
    state = story.StoryState(STORY)
    for envelope, known in zip(envelopes, folded(envelopes)[1:], strict=True):
        state = story.apply(state, envelope)
        assert known.version == state.version
        assert known.status == state.status
        assert known.pinned == state.pinned
        assert set(known.entries) == set(state.entries)
        for entry_id, entry in state.entries.items():
            assert known.entries[entry_id].status == entry.status
            assert known.entries[entry_id].embeds == {e.embed_id for e in entry.embeds}


def test_no_events_is_a_story_that_does_not_exist() -> None:
    """Before story.opened: version 0, genesis head, absent."""
    known = facts.replay(STORY, [])
    assert (known.version, known.head_hash, known.status, known.exists) == (
        0,
        GENESIS,
        "absent",
        False,
    )


def test_retraction_drops_the_embeds_and_the_pin() -> None:
    """A retracted entry keeps no embeds and is never pinned."""
    room = opened("e-1")
    room.command("embed.attached", entry_id="e-1", embed_id="photo", kind="image", url=IMAGE)
    room.command("entry.pinned", entry_id="e-1")
    room.command("entry.retracted", entry_id="e-1", note="Unverified")
    assert room.facts.entries["e-1"] == EntryFacts(status="retracted", embeds=frozenset())
    assert room.facts.pinned is None


def test_edits_and_corrections_change_only_version_and_head() -> None:
    """Nothing a decision looks at changes with a body; the chain head still moves."""
    room = opened("e-1")
    before = room.facts
    room.command("entry.edited", entry_id="e-1", body="<p>Typo</p>")
    room.command("entry.corrected", entry_id="e-1", body="<p>Fixed</p>", note="We said Hama")
    room.command("story.updated", title="Syria Daily, 8 October")
    after = room.facts
    assert (after.entries, after.pinned, after.status) == (
        before.entries,
        before.pinned,
        before.status,
    )
    assert (after.version, after.head_hash) == (5, room.envelopes[-1].hash)


def test_closing_marks_the_story_closed() -> None:
    """story.closed turns the status from live to closed."""
    room = opened()
    assert room.facts.status == "live"
    room.command("story.closed")
    assert room.facts.status == "closed"
    assert room.facts.exists
