"""``dateline audit`` against the running API: export, offline and online verify, replay, corrections,
snapshot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis as redis_sync

from events.chain import Envelope, verify
from services.cli.app import app
from services.store import keys
from tests.conftest import ADMIN_TOKEN, free_port
from tests.services.cli.dateline import QUIET_ENV, dateline, run_module, runner


def audit(api_url: str, token: str | None, *args: str) -> Any:
    """Run ``dateline audit ARGS`` in-process."""
    return dateline(api_url, token, "audit", *args)


def exported(api_url: str, token: str, story: str, path: Path) -> list[bytes]:
    """Export ``story`` to ``path`` with the CLI; its lines."""
    result = audit(api_url, token, "export", story, "-o", str(path))
    assert result.exit_code == 0, result.stderr
    return path.read_bytes().splitlines()


def offline() -> str:
    """An API URL where nothing listens: what ``verify --file`` must not need."""
    return f"http://127.0.0.1:{free_port()}"


# -- export ------------------------------------------------------------------------------------


def test_export_writes_each_envelope_as_the_api_serves_it(
    api_url: str, auditor_token: str, story_id: str, history: list[dict[str, Any]], tmp_path: Path
) -> None:
    """One line per event, in order, byte for byte the stored JSON; a note on stderr only."""
    path = tmp_path / "story.jsonl"
    result = audit(api_url, auditor_token, "export", story_id, "-o", str(path))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert f"exported 8 events of {story_id}" in result.stderr
    lines = path.read_bytes().splitlines()
    assert [json.loads(line)["version"] for line in lines] == list(range(1, 9))
    served = httpx.get(
        f"{api_url}/stories/{story_id}/events",
        headers={"Authorization": f"Bearer {auditor_token}"},
    ).content
    assert served == b'{"events":[' + b",".join(lines) + b'],"next_from_version":null}'
    assert path.read_bytes().endswith(b"\n")
    assert not path.with_name("story.jsonl.part").exists()


def test_export_to_stdout_is_json_lines_that_verify(
    api_url: str, auditor_token: str, story_id: str, history: list[dict[str, Any]]
) -> None:
    """Without -o (and with -o -) the lines go to stdout, and their chain holds."""
    for extra in ([], ["-o", "-"]):
        result = audit(api_url, auditor_token, "export", story_id, *extra)
        assert result.exit_code == 0, result.stderr
        envelopes = [Envelope.model_validate_json(line) for line in result.stdout.splitlines()]
        assert len(envelopes) == 8
        walked = verify(envelopes)
        assert walked.ok
        assert walked.head_hash == history[-1]["hash"]


def test_export_json_prints_a_summary(
    api_url: str, auditor_token: str, story_id: str, history: list[dict[str, Any]], tmp_path: Path
) -> None:
    """--json with a file prints {story, file, events, head_hash} on stdout."""
    path = tmp_path / "s.jsonl"
    result = audit(api_url, auditor_token, "export", story_id, "-o", str(path), "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {
        "story": story_id,
        "file": str(path),
        "events": 8,
        "head_hash": history[-1]["hash"],
    }


def test_export_needs_an_auditor_token(
    api_url: str, editor_token: str, story_id: str, history: list[dict[str, Any]], tmp_path: Path
) -> None:
    """An editor token: exit 2 forbidden, and no file (not even a partial one) is left."""
    path = tmp_path / "s.jsonl"
    result = audit(api_url, editor_token, "export", story_id, "-o", str(path))
    assert result.exit_code == 2
    assert "forbidden" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_export_of_an_unknown_story_is_refused(api_url: str, auditor_token: str) -> None:
    """A story with no events: exit 2 unknown_story."""
    result = audit(api_url, auditor_token, "export", "never-opened-story")
    assert result.exit_code == 2
    assert "unknown_story" in result.stderr


def test_export_with_no_server_exits_3(tmp_path: Path) -> None:
    """Nothing listens at the API URL: exit 3, no file."""
    result = audit(offline(), "t", "export", "s", "-o", str(tmp_path / "s.jsonl"))
    assert result.exit_code == 3
    assert "no answer" in result.stderr
    assert list(tmp_path.iterdir()) == []


# -- verify --file (offline) -------------------------------------------------------------------


def test_verify_file_of_a_good_export_exits_0_with_no_server(
    api_url: str, auditor_token: str, story_id: str, history: list[dict[str, Any]], tmp_path: Path
) -> None:
    """The export's chain holds: exit 0, the count and head hash, without any API."""
    path = tmp_path / "s.jsonl"
    exported(api_url, auditor_token, story_id, path)
    result = audit(offline(), None, "verify", "--file", str(path))
    assert result.exit_code == 0, result.stderr
    assert "chain holds, 8 events" in result.stdout
    assert history[-1]["hash"] in result.stdout

    named = audit(offline(), None, "verify", story_id, "--file", str(path), "--json")
    assert named.exit_code == 0
    answer = json.loads(named.stdout)
    assert answer["ok"] is True
    assert answer["events"] == 8
    assert answer["head_hash"] == history[-1]["hash"]
    assert answer["first_bad_line"] is None
    assert answer["malformed"] == []


def test_verify_file_names_the_line_whose_data_was_changed(
    api_url: str, auditor_token: str, story_id: str, history: list[dict[str, Any]], tmp_path: Path
) -> None:
    """Line 5's data altered (the correction's note): exit 1 naming line 5, version 5, and why."""
    path = tmp_path / "s.jsonl"
    lines = exported(api_url, auditor_token, story_id, path)
    tampered = json.loads(lines[4])
    tampered["data"]["note"] = "We said 140 km/h."
    lines[4] = orjson.dumps(tampered)
    path.write_bytes(b"\n".join(lines) + b"\n")

    result = audit(offline(), None, "verify", "--file", str(path))
    assert result.exit_code == 1
    assert "BROKEN at line 5, version 5" in result.stdout
    assert "data does not match data_hash" in result.stdout

    as_json = audit(offline(), None, "verify", "--file", str(path), "--json")
    assert as_json.exit_code == 1
    answer = json.loads(as_json.stdout)
    assert (answer["ok"], answer["first_bad_line"], answer["first_bad_version"]) == (False, 5, 5)


def test_verify_file_names_a_missing_line(
    api_url: str, auditor_token: str, story_id: str, history: list[dict[str, Any]], tmp_path: Path
) -> None:
    """Line 3 deleted: the chain breaks at line 3, which holds version 4 where 3 was due."""
    path = tmp_path / "s.jsonl"
    lines = exported(api_url, auditor_token, story_id, path)
    del lines[2]
    path.write_bytes(b"\n".join(lines) + b"\n")
    result = audit(offline(), None, "verify", "--file", str(path))
    assert result.exit_code == 1
    assert "BROKEN at line 3, version 3: version 4 where 3 was due" in result.stdout


def test_verify_file_reports_malformed_lines(
    api_url: str, auditor_token: str, story_id: str, history: list[dict[str, Any]], tmp_path: Path
) -> None:
    """A line that is not an envelope is named with why; the file does not verify (exit 1)."""
    path = tmp_path / "s.jsonl"
    lines = exported(api_url, auditor_token, story_id, path)
    lines[7] = b'{"not": "an envelope"'
    path.write_bytes(b"\n".join(lines) + b"\n")
    result = audit(offline(), None, "verify", "--file", str(path), "--json")
    assert result.exit_code == 1
    answer = json.loads(result.stdout)
    assert answer["first_bad_line"] == 8
    assert [m["line"] for m in answer["malformed"]] == [8]
    assert "not an envelope" in answer["malformed"][0]["error"]

    text = audit(offline(), None, "verify", "--file", str(path))
    assert "line 8: not an envelope" in text.stdout


def test_verify_file_refuses_lines_of_another_story(
    api_url: str, auditor_token: str, story_id: str, history: list[dict[str, Any]], tmp_path: Path
) -> None:
    """Naming a STORY with --file: an export of another story does not verify as it."""
    path = tmp_path / "s.jsonl"
    exported(api_url, auditor_token, story_id, path)
    result = audit(offline(), None, "verify", "some-other-story", "--file", str(path))
    assert result.exit_code == 1
    assert f"an event of story '{story_id}'" in result.stdout


def test_verify_file_of_an_empty_file_fails(tmp_path: Path) -> None:
    """An empty file proves nothing: exit 1, said so."""
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    result = audit(offline(), None, "verify", "--file", str(path))
    assert result.exit_code == 1
    assert "no events" in result.stdout


def test_verify_needs_a_story_or_a_readable_file(tmp_path: Path) -> None:
    """Neither a STORY nor --file, or a file that is not there: usage errors, exit 2."""
    neither = audit(offline(), None, "verify")
    missing = audit(offline(), None, "verify", "--file", str(tmp_path / "nope.jsonl"))
    assert (neither.exit_code, missing.exit_code) == (2, 2)
    assert "--file" in neither.stderr


def test_python_m_services_verifies_a_tampered_export_offline(
    api_url: str, auditor_token: str, story_id: str, history: list[dict[str, Any]], tmp_path: Path
) -> None:
    """A real process, no API: a changed body on line 2 exits 1 naming line 2."""
    path = tmp_path / "s.jsonl"
    lines = exported(api_url, auditor_token, story_id, path)
    path.write_bytes(b"\n".join(lines).replace(b"Winds of 150", b"Winds of 15", 1) + b"\n")
    proc = run_module("audit", "verify", "--file", str(path), DATELINE_API_URL=offline())
    assert proc.returncode == 1
    assert "BROKEN at line 2, version 2" in proc.stdout


# -- verify on the server (GET /stories/{story}/verify) ----------------------------------------


def test_verify_of_a_sound_story_exits_0(
    api_url: str, auditor_token: str, story_id: str, history: list[dict[str, Any]]
) -> None:
    """The server re-walks the chain: exit 0, the count and the head hash; --json as the API."""
    result = audit(api_url, auditor_token, "verify", story_id)
    assert result.exit_code == 0, result.stderr
    assert f"{story_id}: chain holds, 8 events, head hash {history[-1]['hash']}" in result.stdout
    as_json = audit(api_url, auditor_token, "verify", story_id, "--json")
    assert json.loads(as_json.stdout) == {
        "ok": True,
        "events": 8,
        "head_hash": history[-1]["hash"],
        "first_bad_version": None,
    }


def test_verify_of_a_tampered_story_exits_1_naming_the_version(
    api_url: str,
    auditor_token: str,
    story_id: str,
    history: list[dict[str, Any]],
    sync_client: redis_sync.Redis,
) -> None:
    """Version 3's data rewritten behind the API's back: exit 1, first bad version 3."""
    stream = keys.events(story_id)
    rows = sync_client.xrange(stream)
    sync_client.delete(stream)
    for stream_id, fields in rows:
        if stream_id == b"3-0":
            envelope = json.loads(fields[b"e"])
            envelope["data"]["body"] = "<p>The port is open.</p>"
            fields = {**fields, b"e": orjson.dumps(envelope)}
        sync_client.xadd(stream, fields, id=stream_id)

    result = audit(api_url, auditor_token, "verify", story_id)
    assert result.exit_code == 1
    assert "BROKEN at version 3" in result.stdout
    as_json = audit(api_url, auditor_token, "verify", story_id, "--json")
    assert as_json.exit_code == 1
    answer = json.loads(as_json.stdout)
    assert (answer["ok"], answer["first_bad_version"]) == (False, 3)


def test_verify_of_an_unknown_story_is_refused(api_url: str, auditor_token: str) -> None:
    """A story with no events: exit 2 unknown_story (a refusal, not a failed check)."""
    result = audit(api_url, auditor_token, "verify", "never-opened-story")
    assert result.exit_code == 2
    assert "unknown_story" in result.stderr


# -- replay ------------------------------------------------------------------------------------


def test_replay_at_a_version_shows_the_story_as_it_stood(
    api_url: str, auditor_token: str, story_id: str, history: list[dict[str, Any]]
) -> None:
    """At version 3: the first title, both entries as first published, no notes."""
    result = audit(api_url, auditor_token, "replay", story_id, "--version", "3", "--json")
    assert result.exit_code == 0, result.stderr
    state = json.loads(result.stdout)
    assert (state["story"], state["version"], state["title"]) == (story_id, 3, "Storm, live")
    bodies = {e["entry_id"]: e["body"] for e in state["entries"]}
    assert bodies == {"e1": "<p>Winds of 150 km/h.</p>", "e2": "<p>Teh port is closed.</p>"}
    assert state["pinned"] is None

    text = audit(api_url, auditor_token, "replay", story_id, "--version", "3")
    assert text.exit_code == 0, text.stderr
    assert "version 3" in text.stdout
    assert "Storm, live" in text.stdout
    assert "Winds of 150 km/h." in text.stdout
    assert "CORRECTED" not in text.stdout


def test_replay_at_the_end_shows_notes_tombstones_and_the_pin(
    api_url: str, auditor_token: str, story_id: str, history: list[dict[str, Any]]
) -> None:
    """At version 8: the new title, the correction note, the tombstone, e1 pinned."""
    result = audit(api_url, auditor_token, "replay", story_id, "--version", "8")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "Storm Oriane, live" in out
    assert "CORRECTED We said 150 km/h." in out
    assert "RETRACTED The port reopened; this was wrong." in out
    assert "PINNED" in out
    assert "The port is closed" not in out


def test_replay_at_a_time_includes_the_event_of_that_instant(
    api_url: str, auditor_token: str, story_id: str, history: list[dict[str, Any]]
) -> None:
    """--at the recorded_at of version 5: the state at version 5 (the correction included)."""
    at = history[4]["recorded_at"]
    result = audit(api_url, auditor_token, "replay", story_id, "--at", at, "--json")
    assert result.exit_code == 0, result.stderr
    state = json.loads(result.stdout)
    assert state["version"] >= 5
    e1 = next(e for e in state["entries"] if e["entry_id"] == "e1")
    assert e1["corrections"][0]["note"] == "We said 150 km/h."


def test_replay_without_a_version_or_a_time_is_the_latest(
    api_url: str, auditor_token: str, story_id: str, history: list[dict[str, Any]]
) -> None:
    """Neither --version nor --at: the story as it stands, at version 8."""
    result = audit(api_url, auditor_token, "replay", story_id, "--json")
    assert result.exit_code == 0, result.stderr
    state = json.loads(result.stdout)
    assert (state["version"], state["title"]) == (8, "Storm Oriane, live")
    assert state["pinned"]["entry_id"] == "e1"


def test_replay_refusals_exit_2(
    api_url: str,
    auditor_token: str,
    editor_token: str,
    story_id: str,
    history: list[dict[str, Any]],
) -> None:
    """Both --version and --at, a time without a zone, an editor token: each exit 2."""
    both = audit(api_url, auditor_token, "replay", story_id, "--version", "2", "--at", "x")
    assert both.exit_code == 2
    assert "not both" in both.stderr
    zoneless = audit(api_url, auditor_token, "replay", story_id, "--at", "2026-01-01T00:00:00")
    assert zoneless.exit_code == 2
    assert "bad_request" in zoneless.stderr
    editor = audit(api_url, editor_token, "replay", story_id, "--version", "2")
    assert editor.exit_code == 2
    assert "forbidden" in editor.stderr


# -- corrections -------------------------------------------------------------------------------


def test_corrections_lists_each_correction_and_retraction_with_its_diff(
    api_url: str, auditor_token: str, story_id: str, history: list[dict[str, Any]]
) -> None:
    """--json: the correction (note, actor, diff) and the retraction, in version order."""
    result = audit(api_url, auditor_token, "corrections", story_id, "--json")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [(r["version"], r["type"], r["entry_id"]) for r in rows] == [
        (5, "entry.corrected", "e1"),
        (8, "entry.retracted", "e2"),
    ]
    corrected, retracted = rows
    assert corrected["actor"] == history[4]["actor"]
    assert corrected["recorded_at"] == history[4]["recorded_at"]
    assert corrected["note"] == "We said 150 km/h."
    assert "-<p>Winds of 150 km/h.</p>" in corrected["diff"]
    assert "+<p>Winds of 130 km/h.</p>" in corrected["diff"]
    assert retracted["note"] == "The port reopened; this was wrong."
    assert retracted["body"] is None


def test_corrections_prints_a_table(
    api_url: str, auditor_token: str, story_id: str, history: list[dict[str, Any]]
) -> None:
    """The table names the kind, the entry, the actor, the note and the changed lines."""
    result = audit(api_url, auditor_token, "corrections", story_id)
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    for shown in ("corrected", "retracted", "e1", "e2", history[4]["actor"], "We said 150 km/h."):
        assert shown in out
    assert "+<p>Winds of 130 km/h.</p>" in out
    assert "edited" not in out


def test_corrections_on_a_narrow_terminal_are_blocks(
    api_url: str, auditor_token: str, story_id: str, history: list[dict[str, Any]]
) -> None:
    """Under 100 columns: one heading line per fix, its note and its diff lines below, unbroken."""
    args = ["--api-url", api_url, "--token", auditor_token, "audit", "corrections", story_id]
    result = runner.invoke(app, args, env={**QUIET_ENV, "COLUMNS": "60"})
    assert result.exit_code == 0, result.stderr
    lines = [line.rstrip() for line in result.stdout.splitlines()]
    assert f"corrected e1  v5  {history[4]['recorded_at'][:10]}" in lines[0]
    assert lines[1:4] == [
        "    We said 150 km/h.",
        "    -<p>Winds of 150 km/h.</p>",
        "    +<p>Winds of 130 km/h.</p>",
    ]
    assert any(line.startswith("retracted e2  v8") for line in lines)


def test_corrections_with_edits_lists_silent_edits_too(
    api_url: str, auditor_token: str, story_id: str, history: list[dict[str, Any]]
) -> None:
    """--edits adds the entry.edited the readers never saw a note for."""
    result = audit(api_url, auditor_token, "corrections", story_id, "--edits", "--json")
    assert result.exit_code == 0, result.stderr
    assert [r["type"] for r in json.loads(result.stdout)] == [
        "entry.corrected",
        "entry.edited",
        "entry.retracted",
    ]


def test_corrections_of_a_story_with_none(
    api_url: str, editor_token: str, auditor_token: str, story_id: str
) -> None:
    """A story never corrected: an empty JSON list, or a line saying so."""
    opened = dateline(api_url, editor_token, "story", "open", story_id, "--title", "Calm")
    assert opened.exit_code == 0, opened.stderr
    as_json = audit(api_url, auditor_token, "corrections", story_id, "--json")
    assert as_json.exit_code == 0, as_json.stderr
    assert json.loads(as_json.stdout) == []
    text = audit(api_url, auditor_token, "corrections", story_id)
    assert "no corrections or retractions" in text.stdout


# -- snapshot ----------------------------------------------------------------------------------


def test_snapshot_saves_the_reader_page_as_it_stood(
    api_url: str, auditor_token: str, story_id: str, history: list[dict[str, Any]], tmp_path: Path
) -> None:
    """--version 3 -o page.html: the HTML page of version 3, with the first title and body."""
    page = tmp_path / "page.html"
    result = audit(api_url, auditor_token, "snapshot", story_id, "--version", "3", "-o", str(page))
    assert result.exit_code == 0, result.stderr
    assert str(page) in result.stdout
    html = page.read_text(encoding="utf-8")
    assert "<html" in html.lower()
    assert 'data-version="3"' in html
    assert "Storm, live" in html
    assert "Winds of 150 km/h." in html


def test_snapshot_json_names_the_file_and_the_version(
    api_url: str, auditor_token: str, story_id: str, history: list[dict[str, Any]], tmp_path: Path
) -> None:
    """--json: {story, file, bytes, version}; with no --version, the latest."""
    page = tmp_path / "latest.html"
    result = audit(api_url, auditor_token, "snapshot", story_id, "-o", str(page), "--json")
    assert result.exit_code == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer == {
        "story": story_id,
        "file": str(page),
        "bytes": page.stat().st_size,
        "version": 8,
    }
    assert 'data-version="8"' in page.read_text(encoding="utf-8")


def test_snapshot_at_a_time_to_stdout(
    api_url: str, auditor_token: str, story_id: str, history: list[dict[str, Any]]
) -> None:
    """--at and no -o: the page on stdout."""
    result = audit(api_url, auditor_token, "snapshot", story_id, "--at", history[-1]["recorded_at"])
    assert result.exit_code == 0, result.stderr
    assert "<html" in result.stdout.lower()
    assert "The port reopened; this was wrong." in result.stdout


# -- help --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command", [[], ["replay"], ["verify"], ["corrections"], ["export"], ["snapshot"]]
)
def test_help_of_every_audit_command_exits_0(command: list[str]) -> None:
    """--help works for each audit command and shows examples."""
    result = runner.invoke(app, ["audit", *command, "--help"], env=QUIET_ENV)
    assert result.exit_code == 0, result.stderr
    assert "Usage" in result.stdout
    if command:
        assert f"dateline audit {command[0]}" in result.stdout


def test_audit_commands_need_a_token(
    api_url: str, story_id: str, history: list[dict[str, Any]]
) -> None:
    """No token: exit 2 unauthorized (export reads history, which is for auditors)."""
    result = audit(api_url, None, "export", story_id)
    assert result.exit_code == 2
    assert "unauthorized" in result.stderr


def test_an_admin_token_may_audit(
    api_url: str, story_id: str, history: list[dict[str, Any]]
) -> None:
    """Admins may do everything: the export works with the admin token."""
    result = audit(api_url, ADMIN_TOKEN, "export", story_id)
    assert result.exit_code == 0, result.stderr
    assert len(result.stdout.splitlines()) == 8
