"""The terminal renderer (``Printer``) on frames from the running gateway: what ``tail`` and
``audit replay`` show of a story."""

from __future__ import annotations

import asyncio
from io import StringIO

from rich.console import Console

from services.cli.render import Frame, Printer
from services.cli.tail import follow
from services.store.record import Store
from tests.services.cli.test_tail import until, write
from tests.services.realtime.test_gateway import opened, projected, publish


def captured() -> tuple[Printer, StringIO]:
    """A printer writing to a string, 120 columns wide, without colours."""
    out = StringIO()
    return Printer(Console(file=out, force_terminal=False, width=120)), out


async def test_tail_prints_the_snapshot_oldest_first_then_each_change(
    ws_url: str, store: Store, story_id: str
) -> None:
    """Entries, corrections, retractions, edits, pins and embeds each show as a reader would want."""
    await projected(store, story_id, await opened(store, story_id, 2))
    printer, out = captured()
    frames: list[Frame] = []

    def on_frame(frame: Frame) -> None:
        frames.append(frame)
        printer(frame)

    stop = asyncio.Event()
    task = asyncio.create_task(follow(ws_url, story_id, on_frame, stop=stop))
    await until(lambda: frames)
    await publish(store, story_id, 2, "<p>Ferries <strong>suspended</strong> at Port Calder.</p>")
    await write(
        store,
        story_id,
        "entry.corrected",
        entry_id="e0",
        body="<p>Update zero, fixed</p>",
        note="We had the wrong wind speed.",
    )
    await write(
        store, story_id, "entry.retracted", entry_id="e1", note="The pier did not collapse."
    )
    await write(store, story_id, "entry.edited", entry_id="e2", body="<p>Ferries suspended.</p>")
    await write(store, story_id, "entry.pinned", entry_id="e2")
    await write(
        store,
        story_id,
        "embed.attached",
        entry_id="e2",
        kind="video",
        url="https://www.youtube.com/watch?v=abcdefghijk",
        caption="Waves at the harbour",
    )
    await write(store, story_id, "story.updated", title="Storm makes landfall")
    await until(lambda: frames[-1]["version"] == 10)
    stop.set()
    await task

    text = out.getvalue()
    assert text.index("Update 0") < text.index("Update 1") < text.index("Ferries suspended at")
    assert "CORRECTED" in text
    assert "We had the wrong wind speed." in text
    assert "Update zero, fixed" in text
    assert "RETRACTED" in text
    assert "The pier did not collapse." in text
    assert text.count("Update 1") == 1, "a retracted entry's body is not shown again"
    assert "edited" in text
    assert "PINNED" in text
    assert "[video] https://www.youtube.com/watch?v=abcdefghijk" in text
    assert "STORY UPDATED" in text
    assert "Storm makes landfall" in text
    assert "<p>" not in text
    assert "<strong>" not in text


async def test_a_snapshot_shows_retracted_entries_as_tombstones(
    ws_url: str, store: Store, story_id: str
) -> None:
    """A story joined late shows a retraction's note and never the withdrawn body."""
    await opened(store, story_id, 1)
    await write(store, story_id, "entry.retracted", entry_id="e0", note="Withdrawn: wrong town.")
    await projected(store, story_id, 3)
    printer, out = captured()
    stop = asyncio.Event()
    task = asyncio.create_task(
        follow(ws_url, story_id, lambda f: (printer(f), stop.set()), stop=stop)
    )
    await task
    text = out.getvalue()
    assert "RETRACTED Withdrawn: wrong town." in text
    assert "Update 0" not in text


def test_an_html_body_prints_as_plain_text_with_paragraphs_bullets_and_links() -> None:
    """Tags are dropped; paragraphs stay apart, list items get bullets, links keep their URL."""
    printer, out = captured()
    body = (
        "<p>Winds of <strong>130&nbsp;km/h</strong>.</p><ul><li>One</li><li>Two</li></ul>"
        '<p>See <a href="https://example.org/a">the advisory</a><br>now.</p>'
    )
    printer.entry({"entry_id": "e1", "time_label": "1850 GMT", "body": body})
    assert [line.rstrip() for line in out.getvalue().splitlines()] == [
        "1850 GMT",
        "    Winds of 130\xa0km/h.",
        "",
        "    • One",
        "    • Two",
        "",
        "    See the advisory (https://example.org/a)",
        "    now.",
    ]
