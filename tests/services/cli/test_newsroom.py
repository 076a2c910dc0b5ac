"""The newsroom commands against the running API: what each appends and prints, refusals, idempotency keys."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx

from tests.conftest import ADMIN_TOKEN
from tests.services.cli.dateline import dateline, head, published, state


def test_story_open_update_and_close_each_print_one_line(
    api_url: str, editor_token: str, story_id: str
) -> None:
    """Each prints what it did and the version; the story ends closed with its new title."""
    opened = dateline(
        api_url, editor_token, "story", "open", story_id, "--title", "Storm", "--summary", "S"
    )
    assert opened.exit_code == 0, opened.stderr
    assert opened.stdout == f"opened {story_id} as version 1\n"
    updated = dateline(
        api_url, editor_token, "story", "update", story_id, "--title", "Storm Oriane"
    )
    assert updated.stdout == f"updated {story_id} as version 2\n"
    closed = dateline(api_url, editor_token, "story", "close", story_id, "--note", "Over.")
    assert closed.stdout == f"closed {story_id} as version 3\n"

    s = state(api_url, story_id, 3)
    assert (s["title"], s["summary"], s["status"], s["closed_note"]) == (
        "Storm Oriane",
        "S",
        "closed",
        "Over.",
    )


def test_opening_a_story_twice_is_refused(api_url: str, editor_token: str, opened: str) -> None:
    """The second open: exit 2 story_exists, nothing appended."""
    result = dateline(api_url, editor_token, "story", "open", opened, "--title", "Again")
    assert result.exit_code == 2
    assert "story_exists" in result.stderr
    assert head(api_url, opened) == 1


def test_story_update_needs_a_title_or_a_summary(
    api_url: str, editor_token: str, opened: str
) -> None:
    """Neither given: a usage error (exit 2), nothing sent."""
    result = dateline(api_url, editor_token, "story", "update", opened)
    assert result.exit_code == 2
    assert "--title" in result.stderr
    assert head(api_url, opened) == 1


def test_publish_prints_the_entry_the_version_and_the_story(
    api_url: str, editor_token: str, opened: str
) -> None:
    """The one-line summary names the server-assigned entry id, the version and the story."""
    result = dateline(
        api_url,
        editor_token,
        "publish",
        opened,
        "--body",
        "<p>Landfall near <strong>Brest</strong>.</p>",
        "--headline",
        "Landfall",
        "--key-event",
        "--time-label",
        "1850 GMT",
    )
    assert result.exit_code == 0, result.stderr
    words = result.stdout.split()
    assert words[0] == "published"
    assert words[2:] == ["as", "version", "2", "of", opened]
    entry = state(api_url, opened, 2)["entries"][0]
    assert entry["entry_id"] == words[1]
    assert (entry["headline"], entry["key_event"], entry["time_label"]) == (
        "Landfall",
        True,
        "1850 GMT",
    )
    assert entry["body"] == "<p>Landfall near <strong>Brest</strong>.</p>"


def test_publish_json_prints_the_envelope_as_stored(
    api_url: str, editor_token: str, opened: str
) -> None:
    """--json prints the stored envelope: the same bytes GET …/events serves."""
    result = dateline(
        api_url, editor_token, "publish", opened, "--entry-id", "e1", "--body", "<p>é</p>", "--json"
    )
    assert result.exit_code == 0, result.stderr
    envelope = json.loads(result.stdout)
    assert (envelope["type"], envelope["version"], envelope["data"]["entry_id"]) == (
        "entry.published",
        2,
        "e1",
    )
    served = httpx.get(
        f"{api_url}/stories/{opened}/events",
        params={"from_version": 2},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert result.stdout.strip().encode() in served.content


def test_the_body_can_come_from_stdin(api_url: str, editor_token: str, opened: str) -> None:
    """--body - reads the HTML from stdin, exactly as given."""
    body = "<p>From a pipe,\nwith a line break.</p>"
    result = dateline(
        api_url, editor_token, "publish", opened, "--entry-id", "piped", "--body", "-", stdin=body
    )
    assert result.exit_code == 0, result.stderr
    assert state(api_url, opened, 2)["entries"][0]["body"] == body


def test_the_body_can_come_from_a_file(
    api_url: str, editor_token: str, opened: str, tmp_path: Path
) -> None:
    """--body-file reads the HTML from a file; correct takes it too."""
    first, fixed = tmp_path / "first.html", tmp_path / "fixed.html"
    first.write_text("<p>Winds of 150 km/h.</p>", encoding="utf-8")
    fixed.write_text("<ul><li>Winds of 130 km/h.</li></ul>", encoding="utf-8")
    published = dateline(
        api_url, editor_token, "publish", opened, "--entry-id", "e1", "--body-file", str(first)
    )
    assert published.exit_code == 0, published.stderr
    corrected = dateline(
        api_url,
        editor_token,
        "correct",
        opened,
        "e1",
        "--body-file",
        str(fixed),
        "--note",
        "We said 150.",
    )
    assert corrected.exit_code == 0, corrected.stderr
    entry = state(api_url, opened, 3)["entries"][0]
    assert entry["body"] == "<ul><li>Winds of 130 km/h.</li></ul>"
    assert entry["corrections"][0]["note"] == "We said 150."


def test_a_body_is_needed_once(
    api_url: str, editor_token: str, opened: str, tmp_path: Path
) -> None:
    """No body, both --body and --body-file, or a missing file: exit 2, nothing appended."""
    page = tmp_path / "page.html"
    page.write_text("<p>x</p>", encoding="utf-8")
    none = dateline(api_url, editor_token, "publish", opened)
    both = dateline(
        api_url, editor_token, "publish", opened, "--body", "<p>x</p>", "--body-file", str(page)
    )
    missing = dateline(
        api_url, editor_token, "publish", opened, "--body-file", str(tmp_path / "no")
    )
    assert [r.exit_code for r in (none, both, missing)] == [2, 2, 2]
    assert "--body" in none.stderr
    assert "not both" in both.stderr
    assert "no" in missing.stderr
    assert head(api_url, opened) == 1


def test_every_newsroom_command_lands_its_event(
    api_url: str, editor_token: str, opened: str
) -> None:
    """edit, correct, pin, embed attach and remove, unpin, retract: each summary, then the state."""
    published(api_url, editor_token, opened, "e1", "<p>Teh storm.</p>")
    published(api_url, editor_token, opened, "e2", "<p>Second.</p>")
    steps = [
        (["edit", opened, "e1", "--body", "<p>The storm.</p>"], "edited e1 as version 4"),
        (
            ["correct", opened, "e2", "--body", "<p>Second, fixed.</p>", "--note", "Fixed."],
            "corrected e2 as version 5",
        ),
        (["pin", opened, "e1"], "pinned e1 as version 6"),
        (
            [
                "embed",
                "attach",
                opened,
                "e1",
                "--kind",
                "map",
                "--url",
                "https://www.openstreetmap.org/#map=8/48.4/-4.5",
                "--caption",
                "The coast",
                "--embed-id",
                "map-1",
            ],
            "attached map-1 to e1 as version 7",
        ),
        (
            [
                "embed",
                "attach",
                opened,
                "e1",
                "--kind",
                "image",
                "--url",
                "https://example.org/a.jpg",
                "--alt",
                "Waves",
            ],
            "to e1 as version 8",
        ),
        (["embed", "remove", opened, "e1", "map-1"], "removed map-1 from e1 as version 9"),
        (["unpin", opened, "e1"], "unpinned e1 as version 10"),
        (["retract", opened, "e2", "--note", "Not confirmed."], "retracted e2 as version 11"),
    ]
    for args, summary in steps:
        result = dateline(api_url, editor_token, *args)
        assert result.exit_code == 0, (args, result.stderr)
        assert summary in result.stdout
        assert result.stdout.rstrip().endswith(f"of {opened}")

    s = state(api_url, opened, 11)
    e1, e2 = (next(e for e in s["entries"] if e["entry_id"] == i) for i in ("e1", "e2"))
    assert e1["body"] == "<p>The storm.</p>"
    assert e1["corrections"] == []
    assert [(m["kind"], m["alt"]) for m in e1["embeds"]] == [("image", "Waves")]
    assert s["pinned"] is None
    assert e2["status"] == "retracted"
    assert e2["retraction"]["note"] == "Not confirmed."


def test_correcting_a_retracted_entry_is_refused(
    api_url: str, editor_token: str, opened: str
) -> None:
    """Exit 2 with the API's message and code (invalid_state) on stderr; nothing appended."""
    published(api_url, editor_token, opened, "e1")
    retracted = dateline(api_url, editor_token, "retract", opened, "e1", "--note", "Wrong.")
    assert retracted.exit_code == 0, retracted.stderr
    result = dateline(
        api_url, editor_token, "correct", opened, "e1", "--body", "<p>x</p>", "--note", "n"
    )
    assert result.exit_code == 2
    assert "invalid_state" in result.stderr
    assert "'e1' is retracted" in result.stderr
    assert result.stdout == ""
    assert head(api_url, opened) == 3


def test_html_outside_the_subset_is_refused_naming_the_tag(
    api_url: str, editor_token: str, opened: str
) -> None:
    """A <script> body: exit 2, invalid_event, the refused tag named; nothing appended."""
    result = dateline(
        api_url, editor_token, "publish", opened, "--body", "<p>Hi</p><script>alert(1)</script>"
    )
    assert result.exit_code == 2
    assert "invalid_event" in result.stderr
    assert "tag <script>" in result.stderr
    assert head(api_url, opened) == 1


def test_an_embed_off_the_allow_list_is_refused(
    api_url: str, editor_token: str, opened: str
) -> None:
    """A video from an unknown provider: exit 2 invalid_event naming the URL problem."""
    published(api_url, editor_token, opened, "e1")
    url = "https://videos.example.org/v/1"
    result = dateline(
        api_url, editor_token, "embed", "attach", opened, "e1", "--kind", "video", "--url", url
    )
    assert result.exit_code == 2
    assert "invalid_event" in result.stderr
    assert "refused:" in result.stderr
    assert head(api_url, opened) == 2


def test_a_stale_expected_version_is_a_conflict(
    api_url: str, editor_token: str, opened: str
) -> None:
    """--expected-version that is not the story's version: exit 2 version_conflict with details."""
    result = dateline(
        api_url, editor_token, "publish", opened, "--body", "<p>x</p>", "--expected-version", "7"
    )
    assert result.exit_code == 2
    assert "version_conflict" in result.stderr
    assert '"current_version":1' in result.stderr
    ok = dateline(
        api_url, editor_token, "publish", opened, "--body", "<p>x</p>", "--expected-version", "1"
    )
    assert ok.exit_code == 0, ok.stderr


def test_writing_to_an_unknown_story_is_refused(api_url: str, editor_token: str) -> None:
    """A story that was never opened: exit 2 unknown_story."""
    result = dateline(api_url, editor_token, "pin", f"never-{uuid.uuid4().hex[:8]}", "e1")
    assert result.exit_code == 2
    assert "unknown_story" in result.stderr


def test_a_rerun_with_the_same_key_appends_once(
    api_url: str, editor_token: str, opened: str
) -> None:
    """The same command twice with --idempotency-key: the same answer, one event."""
    args = ["publish", opened, "--body", "<p>Once.</p>", "--idempotency-key", "k-once", "--json"]
    first = dateline(api_url, editor_token, *args)
    again = dateline(api_url, editor_token, *args)
    assert first.exit_code == again.exit_code == 0
    assert first.stdout == again.stdout
    assert json.loads(first.stdout)["idempotency_key"] == "k-once"
    assert head(api_url, opened) == 2


def test_the_same_key_for_another_write_is_refused(
    api_url: str, editor_token: str, opened: str
) -> None:
    """A pinned key reused with another body: exit 2 idempotency_key_reused, nothing appended."""
    key = f"k-{uuid.uuid4().hex}"
    first = dateline(
        api_url, editor_token, "publish", opened, "--body", "<p>a</p>", "--idempotency-key", key
    )
    other = dateline(
        api_url, editor_token, "publish", opened, "--body", "<p>b</p>", "--idempotency-key", key
    )
    assert first.exit_code == 0, first.stderr
    assert other.exit_code == 2
    assert "idempotency_key_reused" in other.stderr
    assert head(api_url, opened) == 2


def test_each_run_sends_a_fresh_key(api_url: str, editor_token: str, opened: str) -> None:
    """Without --idempotency-key, two runs of the same command are two writes, each keyed."""
    runs = [
        dateline(api_url, editor_token, "publish", opened, "--body", "<p>Same.</p>", "--json")
        for _ in range(2)
    ]
    keys = [json.loads(r.stdout)["idempotency_key"] for r in runs]
    assert all(keys)
    assert keys[0] != keys[1]
    assert head(api_url, opened) == 3
