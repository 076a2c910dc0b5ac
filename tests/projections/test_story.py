"""The readers' fold: properties over generated histories, then one behaviour per example
(CONTRACT.md "Story state" and "Details: Edges")."""

from __future__ import annotations

import json
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from events.chain import Envelope
from projections.story import (
    MAX_LIMIT,
    Entry,
    Note,
    StoryState,
    apply,
    key_events_json,
    render,
    replay,
    with_key_event,
)
from projections.wordiff import word_diff
from tests.strategies import PROPERTIES, STORY, Newsroom, histories, opened, recorded_at

IMAGE = "https://example.org/aleppo-citadel.jpg"
VIDEO = "https://www.youtube.com/watch?v=dQw4w9WgXcQ"


def states(envelopes: list[Envelope]) -> list[StoryState]:
    """The state before any event, then after each one, folding one event at a time."""
    folded = [StoryState(STORY)]
    for envelope in envelopes:
        folded.append(apply(folded[-1], envelope))
    return folded


def walk(state: StoryState, limit: int) -> list[dict[str, Any]]:
    """Every page of entries, following ``next_before`` from the first page to the last."""
    pages = [render(state, limit=limit)]
    while pages[-1]["next_before"] is not None:
        cursor = pages[-1]["next_before"]
        assert isinstance(cursor, str)
        pages.append(render(state, limit=limit, before=int(cursor)))
    return pages


def contract_reading(envelopes: list[Envelope]) -> dict[str, Any]:
    """The story state as CONTRACT.md describes it, read off the events with plain dicts.

    Entries and key events also carry ``published_version``, the paging key the projection adds.
    """
    story: dict[str, Any] = {"story": STORY, "summary": None, "closed_note": None, "pinned": None}
    entries: dict[str, dict[str, Any]] = {}
    for env in envelopes:
        data, at = env.data, env.recorded_at
        story["version"], story["updated_at"] = env.version, at
        entry = entries.get(str(data.get("entry_id")))
        if entry is not None and env.type not in ("entry.pinned", "entry.unpinned"):
            entry["updated_at"] = at
        if env.type == "story.opened":
            story.update(title=data["title"], summary=data.get("summary"), status="live")
        elif env.type == "story.updated":
            story.update({k: data[k] for k in ("title", "summary") if k in data})
        elif env.type == "story.closed":
            story.update(status="closed", closed_note=data.get("note"))
        elif env.type == "entry.published":
            entries[str(data["entry_id"])] = {
                "entry_id": data["entry_id"],
                "headline": data.get("headline"),
                "body": data["body"],
                "time_label": data.get("time_label"),
                "key_event": data.get("key_event", False),
                "published_at": at,
                "updated_at": at,
                "status": "published",
                "retraction": None,
                "corrections": [],
                "embeds": [],
                "published_version": env.version,
            }
        elif entry is None:
            raise AssertionError(f"{env.type} on a missing entry")
        elif env.type == "entry.edited":
            entry.update({k: data[k] for k in ("body", "headline") if k in data})
        elif env.type == "entry.corrected":
            diff = [list(run) for run in word_diff(entry["body"] or "", data["body"])]
            entry["body"] = data["body"]
            note = {"note": data["note"], "at": at, "version": env.version, "diff": diff}
            entry["corrections"].append(note)
        elif env.type == "entry.retracted":
            retraction = {"note": data["note"], "at": at, "version": env.version}
            entry.update(body=None, status="retracted", retraction=retraction, embeds=[])
            for note in entry["corrections"]:  # a retracted text is never shown, not even as a diff
                note.pop("diff", None)
            if story["pinned"] == entry["entry_id"]:
                story["pinned"] = None
        elif env.type == "entry.pinned":
            story["pinned"] = entry["entry_id"]
        elif env.type == "entry.unpinned":
            story["pinned"] = None
        elif env.type == "embed.attached":
            fields = ("embed_id", "kind", "url", "caption", "alt")
            entry["embeds"].append({k: data.get(k) for k in fields})
        elif env.type == "embed.removed":
            entry["embeds"] = [e for e in entry["embeds"] if e["embed_id"] != data["embed_id"]]
    newest_first = sorted(entries.values(), key=lambda e: -e["published_version"])
    return {
        **story,
        "pinned": entries[story["pinned"]] if story["pinned"] else None,
        "key_events": [
            {k: e[k] for k in ("entry_id", "headline", "published_version")}
            for e in newest_first
            if e["key_event"] and e["status"] == "published"
        ],
        "entries": newest_first,
        "next_before": None,
    }


@PROPERTIES
@given(histories())
def test_replaying_any_prefix_gives_the_state_reached_at_that_version(
    envelopes: list[Envelope],
) -> None:
    """replay(events[:n]) is exactly what the one-at-a-time fold had after n events."""
    folded = states(envelopes)
    for n in range(len(envelopes) + 1):
        assert replay(STORY, envelopes[:n]) == folded[n]
        assert folded[n].version == n


@PROPERTIES
@given(histories(), st.data())
def test_replay_resumes_from_any_earlier_state(
    envelopes: list[Envelope], data: st.DataObject
) -> None:
    """Folding the rest of the events onto a kept state gives the state of the whole history."""
    n = data.draw(st.integers(min_value=0, max_value=len(envelopes)), label="n")
    middle = replay(STORY, envelopes[:n])
    assert replay(STORY, envelopes[n:], middle) == replay(STORY, envelopes)


@PROPERTIES
@given(histories())
def test_the_same_events_give_equal_state_and_equal_json(envelopes: list[Envelope]) -> None:
    """Two independent folds, one from the events as stored, render byte-identical JSON."""
    stored = [Envelope.model_validate_json(e.to_json()) for e in envelopes]
    first, second = replay(STORY, envelopes), replay(STORY, stored)
    assert first == second
    assert orjson.dumps(render(first)) == orjson.dumps(render(second))
    assert json.dumps(render(first)) == json.dumps(render(second))
    assert json.loads(orjson.dumps(render(first))) == render(first)


@PROPERTIES
@given(histories())
def test_the_fold_agrees_with_a_plain_reading_of_the_contract(envelopes: list[Envelope]) -> None:
    """Every field of the rendered state is what CONTRACT.md "Story state" says it should be."""
    assert render(replay(STORY, envelopes), limit=MAX_LIMIT) == contract_reading(envelopes)


@PROPERTIES
@given(histories(), st.integers(min_value=1, max_value=7))
def test_paging_visits_every_entry_once_newest_first(envelopes: list[Envelope], limit: int) -> None:
    """Following next_before with any limit shows each entry exactly once, newest first."""
    state = replay(STORY, envelopes)
    pages = walk(state, limit)
    seen = [entry["entry_id"] for page in pages for entry in page["entries"]]
    published = [e.data["entry_id"] for e in reversed(envelopes) if e.type == "entry.published"]
    assert seen == published
    assert all(len(page["entries"]) == limit for page in pages[:-1])
    assert 0 < len(pages[-1]["entries"]) <= limit or seen == []
    assert all(page["key_events"] == pages[0]["key_events"] for page in pages)
    assert all(page["pinned"] == pages[0]["pinned"] for page in pages)


@PROPERTIES
@given(histories())
def test_key_events_are_the_key_entries_not_retracted_newest_first(
    envelopes: list[Envelope],
) -> None:
    """key_events lists every published key event, newest first; a retraction takes one out."""
    retracted = {e.data["entry_id"] for e in envelopes if e.type == "entry.retracted"}
    expected = [
        e.data["entry_id"]
        for e in reversed(envelopes)
        if e.type == "entry.published"
        and e.data.get("key_event")
        and e.data["entry_id"] not in retracted
    ]
    key_events = render(replay(STORY, envelopes))["key_events"]
    assert isinstance(key_events, list)
    assert [k["entry_id"] for k in key_events] == expected


@PROPERTIES
@given(histories())
def test_key_events_kept_one_change_at_a_time_match_the_whole_list(
    envelopes: list[Envelope],
) -> None:
    """The projector's incremental list (with_key_event per changed entry) never drifts."""
    state, kept = StoryState(STORY), key_events_json([])
    for envelope in envelopes:
        state = apply(state, envelope)
        entry_id = envelope.data.get("entry_id")
        if isinstance(entry_id, str):
            kept = with_key_event(kept, state.entries[entry_id])
        assert kept == key_events_json(state.entries.values())


@PROPERTIES
@given(histories())
def test_an_entry_reads_back_from_its_stored_json(envelopes: list[Envelope]) -> None:
    """Entry.from_json undoes to_json, so the projector's stored entries lose nothing."""
    for entry in replay(STORY, envelopes).entries.values():
        assert Entry.from_json(json.loads(json.dumps(entry.to_json()))) == entry


def test_a_story_just_opened_renders_empty() -> None:
    """Version 1: title and summary, live, nothing pinned, no entries, no next page."""
    room = Newsroom()
    room.open(title="Syria Daily", summary="Live from Aleppo")
    assert render(room.state) == {
        "story": STORY,
        "title": "Syria Daily",
        "summary": "Live from Aleppo",
        "status": "live",
        "closed_note": None,
        "version": 1,
        "updated_at": recorded_at(1),
        "pinned": None,
        "key_events": [],
        "entries": [],
        "next_before": None,
    }


def test_a_published_entry_renders_every_contract_field() -> None:
    """A new entry: body, headline, time label, both times at publication, no notes or embeds."""
    room = opened()
    room.command(
        "entry.published",
        entry_id="e-1",
        body="<p>Ceasefire announced</p>",
        headline="Ceasefire",
        key_event=True,
        time_label="1850 GMT",
    )
    (entry,) = render(room.state)["entries"]
    assert entry == {
        "entry_id": "e-1",
        "headline": "Ceasefire",
        "body": "<p>Ceasefire announced</p>",
        "time_label": "1850 GMT",
        "key_event": True,
        "published_at": recorded_at(2),
        "updated_at": recorded_at(2),
        "status": "published",
        "retraction": None,
        "corrections": [],
        "embeds": [],
        "published_version": 2,
    }


def test_a_retraction_leaves_a_tombstone_without_body_embeds_key_event_or_pin() -> None:
    """Retracting nulls the body, drops the embeds, leaves key_events and takes the pin away."""
    room = opened()
    room.command("entry.published", entry_id="e-1", body="<p>Claim</p>", key_event=True)
    room.command("embed.attached", entry_id="e-1", kind="image", url=IMAGE)
    room.command("entry.pinned", entry_id="e-1")
    room.command("entry.retracted", entry_id="e-1", note="Could not be verified")
    page = render(room.state)
    (entry,) = page["entries"]
    assert entry["status"] == "retracted"
    assert entry["body"] is None
    assert entry["embeds"] == []
    assert entry["retraction"] == {
        "note": "Could not be verified",
        "at": recorded_at(5),
        "version": 5,
    }
    assert entry["updated_at"] == recorded_at(5)
    assert page["key_events"] == []
    assert page["pinned"] is None
    assert room.state.pinned is None


def test_retracting_another_entry_leaves_the_pin_where_it_is() -> None:
    """Only the retracted entry loses the pin."""
    room = opened("e-1", "e-2")
    room.command("entry.pinned", entry_id="e-1")
    room.command("entry.retracted", entry_id="e-2", note="Duplicate")
    assert room.state.pinned == "e-1"


def test_a_correction_adds_a_note_with_its_time_version_and_what_it_changed() -> None:
    """A correction replaces the body, appends {note, at, version, diff}, and moves updated_at;
    the diff is of the text readers saw just before it (an edit between counts)."""
    room = opened("e-1")
    room.command("entry.corrected", entry_id="e-1", body="<p>Homs</p>", note="We said Hama")
    room.command("entry.edited", entry_id="e-1", body="<p>Homs, <b>city</b></p>")
    room.command("entry.corrected", entry_id="e-1", body="<p>Homs, 18:50</p>", note="Time added")
    entry = room.state.entries["e-1"]
    assert entry.body == "<p>Homs, 18:50</p>"
    assert entry.corrections == (
        Note("We said Hama", recorded_at(3), 3, (("-", "Entry e-1"), ("+", "Homs"))),
        Note("Time added", recorded_at(5), 5, (("=", "Homs, "), ("-", "city"), ("+", "18:50"))),
    )
    assert entry.to_json()["corrections"][1] == {
        "note": "Time added",
        "at": recorded_at(5),
        "version": 5,
        "diff": [["=", "Homs, "], ["-", "city"], ["+", "18:50"]],
    }
    assert (entry.published_at, entry.updated_at) == (recorded_at(2), recorded_at(5))


def test_an_edit_is_silent_and_keeps_the_headline_unless_given() -> None:
    """An edit changes body (and headline when sent) and adds no note readers would see."""
    room = opened()
    room.command("entry.published", entry_id="e-1", body="<p>Teh</p>", headline="Damascus")
    room.command("entry.edited", entry_id="e-1", body="<p>The</p>")
    assert (room.state.entries["e-1"].body, room.state.entries["e-1"].headline) == (
        "<p>The</p>",
        "Damascus",
    )
    room.command("entry.edited", entry_id="e-1", body="<p>The.</p>", headline="Damascus, 18:50")
    entry = room.state.entries["e-1"]
    assert (entry.body, entry.headline, entry.corrections) == ("<p>The.</p>", "Damascus, 18:50", ())
    assert entry.updated_at == recorded_at(4)


def test_pinning_changes_the_storys_updated_at_but_not_the_entrys() -> None:
    """The pin is the story's business: the entry's updated_at stays at its last change."""
    room = opened("e-1")
    room.command("entry.pinned", entry_id="e-1")
    page = render(room.state)
    assert page["updated_at"] == recorded_at(3)
    assert page["version"] == 3
    assert page["pinned"]["updated_at"] == recorded_at(2)
    room.command("entry.unpinned", entry_id="e-1")
    assert room.state.updated_at == recorded_at(4)
    assert room.state.entries["e-1"].updated_at == recorded_at(2)


def test_pinning_another_entry_moves_the_pin() -> None:
    """The story shows one pinned entry: the last one pinned."""
    room = opened("e-1", "e-2")
    room.command("entry.pinned", entry_id="e-1")
    room.command("entry.pinned", entry_id="e-2")
    page = render(room.state)
    assert page["pinned"]["entry_id"] == "e-2"
    assert page["pinned"] == page["entries"][0]


def test_embeds_keep_their_order_when_one_is_removed() -> None:
    """Embeds show in the order attached; removing one leaves the rest in place."""
    room = opened("e-1")
    for embed_id in ("a", "b", "c"):
        room.command("embed.attached", entry_id="e-1", embed_id=embed_id, kind="video", url=VIDEO)
    room.command("embed.removed", entry_id="e-1", embed_id="b")
    embeds = room.state.entries["e-1"].embeds
    assert [e.embed_id for e in embeds] == ["a", "c"]
    assert embeds[0].to_json() == {
        "embed_id": "a",
        "kind": "video",
        "url": VIDEO,
        "caption": None,
        "alt": None,
    }
    assert room.state.entries["e-1"].updated_at == recorded_at(6)


def test_updating_the_story_changes_only_the_fields_sent() -> None:
    """story.updated with a summary keeps the title; with a title keeps the summary."""
    room = Newsroom()
    room.open(title="Syria Daily", summary="Live")
    room.command("story.updated", summary="Live from Aleppo")
    assert (room.state.title, room.state.summary) == ("Syria Daily", "Live from Aleppo")
    room.command("story.updated", title="Syria Daily, 7 October")
    assert (room.state.title, room.state.summary) == ("Syria Daily, 7 October", "Live from Aleppo")


def test_closing_shows_the_status_and_its_note() -> None:
    """A closed story says so, with the note it was closed with."""
    room = opened("e-1")
    room.command("story.closed", note="Our live coverage has ended")
    page = render(room.state)
    assert (page["status"], page["closed_note"], page["version"]) == (
        "closed",
        "Our live coverage has ended",
        3,
    )


def test_pages_split_at_the_limit_and_the_last_has_no_cursor() -> None:
    """Five entries with limit 2: pages of 2, 2 and 1, the cursors pointing older each time."""
    room = opened("e-1", "e-2", "e-3", "e-4", "e-5")
    pages = walk(room.state, limit=2)
    assert [[e["entry_id"] for e in p["entries"]] for p in pages] == [
        ["e-5", "e-4"],
        ["e-3", "e-2"],
        ["e-1"],
    ]
    assert [p["next_before"] for p in pages] == ["5", "3", None]


def test_a_page_that_ends_exactly_at_the_last_entry_has_no_cursor() -> None:
    """When the entries fill the page exactly, next_before is null: there is no empty next page."""
    room = opened("e-1", "e-2")
    assert render(room.state, limit=2)["next_before"] is None


def test_a_retraction_keeps_the_correction_notes_but_not_what_they_changed() -> None:
    """The diffs held the retracted text: they go with it; the notes stay."""
    room = opened("e-1")
    room.command("entry.corrected", entry_id="e-1", body="<p>Homs</p>", note="We said Hama")
    room.command("entry.retracted", entry_id="e-1", note="Wrong city")
    [note] = room.state.entries["e-1"].corrections
    assert note == Note("We said Hama", recorded_at(3), 3)
    assert "diff" not in note.to_json()
