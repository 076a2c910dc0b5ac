"""``dateline audit``: replay, verify, corrections, export and snapshot, for auditors.

Rules (CONTRACT "Command line", "HTTP API"; docs/errors.md "In the command line"):
- every command but ``verify --file`` goes through the HTTP API with an auditor (or admin) token;
- ``verify`` prints what it found on stdout, then raises ``ChainBroken`` (exit 1: a check failed)
  when the chain does not hold; a refusal is 2 and no answer 3, as for every command
  (``services.cli.errors``);
- ``export`` writes each envelope as one line of canonical JSON (``events.chain.canonical``): the
  bytes the store keeps and the API serves, so an export verifies offline and diffs byte for byte;
- ``verify --file`` needs no server: it walks the export's chain with ``events.chain.verify`` and
  names the first line that does not hold (and every line that is not an envelope);
- results go to stdout (``--json`` for scripts); progress bars and messages to stderr;
  ``replay`` prints the story as ``tail`` does (``services.cli.render``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Annotated, Any

import orjson
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.padding import Padding
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TextColumn,
)
from rich.table import Table
from rich.text import Text

from events.chain import GENESIS, Envelope, canonical, data_hash, link_hash, verify
from events.errors import ApiUnreachable, ChainBroken, DatelineError, UsageError
from services.cli.client import Api, api
from services.cli.errors import reported
from services.cli.render import Printer

app = typer.Typer(
    name="audit",
    help="Audit a story: replay it as it stood, verify its hash chain, list its corrections, "
    "export it (auditor token).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

StoryArg = Annotated[str, typer.Argument(help="The story's id.", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
VersionOpt = Annotated[
    int | None, typer.Option("--version", min=1, help="As it stood at this version.")
]
AtOpt = Annotated[
    str | None,
    typer.Option(
        "--at", help="As it stood at this time (ISO 8601 with a zone, e.g. 2026-11-24T18:50:00Z)."
    ),
]
PAGE = 10_000
"""Events per page for ``export`` and ``corrections`` (the API's maximum)."""


def _stderr() -> Console:
    return Console(stderr=True, highlight=False)


def _when(client: Api, story: str, version: int | None, at: str | None) -> dict[str, Any]:
    """The replay's query: ``version`` or ``at``; neither means the story's latest version."""
    if version is not None and at is not None:
        raise UsageError("give --version or --at, not both")
    if version is None and at is None:
        version = int(client.get(f"/stories/{story}", limit=1)["version"])
    return {"version": version} if at is None else {"at": at}


def _json(value: Any) -> None:
    typer.echo(orjson.dumps(value).decode())


# -- replay ------------------------------------------------------------------------------------


@app.command()
def replay(
    ctx: typer.Context,
    story: StoryArg,
    version: VersionOpt = None,
    at: AtOpt = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Entries to show (50; at most 500).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the story as it stood at a version or a time: entries, pin, notes, tombstones.

    The state is the one readers saw then (GET /stories/STORY/replay), folded from the events.
    Without --version or --at: the latest version.

    Examples:
      dateline audit replay syria-live --version 12
      dateline audit replay syria-live --at 2026-11-24T18:50:00Z --json
    """
    with reported(), api(ctx) as client:
        params = _when(client, story, version, at)
        state = client.get(f"/stories/{story}/replay", **params, limit=limit)
    if as_json:
        _json(state)
        return
    out = Console(highlight=False)
    when = f" at {at}" if at else ""
    out.print(Text(f"replay of {story}{when}: version {state.get('version')}", style="bold"))
    Printer(out).snapshot({"story": story, "version": state.get("version"), "state": state})


# -- verify ------------------------------------------------------------------------------------


@dataclass
class FileCheck:
    """What an offline walk of an export found."""

    path: str
    events: int = 0
    ok: bool = True
    head_hash: str = GENESIS
    first_bad_version: int | None = None
    first_bad_line: int | None = None
    reason: str | None = None
    malformed: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.path,
            "ok": self.ok,
            "events": self.events,
            "head_hash": self.head_hash,
            "first_bad_version": self.first_bad_version,
            "first_bad_line": self.first_bad_line,
            "reason": self.reason,
            "malformed": self.malformed,
        }


def diagnose(envelope: Envelope, position: int, prev: str) -> str:
    """Why the envelope at ``position`` (1-based) does not hold, after a chain ending in ``prev``."""
    if envelope.version != position:
        return (
            f"version {envelope.version} where {position} was due (a line missing, extra or moved)"
        )
    if envelope.prev_hash != prev:
        return "prev_hash is not the previous event's hash"
    if data_hash(envelope.data) != envelope.data_hash:
        return "data does not match data_hash (the data was changed)"
    if link_hash(prev, envelope.link_fields()) != envelope.hash:
        return "hash does not match the envelope (a field was changed)"
    return "it does not follow the chain"


def _problem(error: ValueError) -> str:
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return f"not an envelope: {where + ': ' if where else ''}{first['msg']}"
    return f"not an envelope: {error}"


def check_file(path: Path, story: str | None = None) -> FileCheck:
    """Walk an export's chain offline (``events.chain.verify``); name its first bad line.

    The file is streamed: only line numbers are kept, so an export of any length fits.
    """
    check = FileCheck(str(path))
    numbers: list[int] = []  # the line of each envelope handed to the walk, in order
    last: list[Envelope] = []  # the latest of them: where the walk stopped, when it did

    def envelopes(lines: Iterator[bytes]) -> Iterator[Envelope]:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                envelope = Envelope.model_validate_json(line)
            except ValueError as error:
                check.malformed.append({"line": number, "error": _problem(error)})
                continue
            if story is not None and envelope.story != story:
                problem = f"an event of story {envelope.story!r}, not {story!r}"
                check.malformed.append({"line": number, "error": problem})
                continue
            numbers.append(number)
            last[:] = [envelope]
            yield envelope

    with path.open("rb") as handle:
        stream = envelopes(handle)
        walked = verify(stream)
        bad_line: int | None = None
        if not walked.ok and walked.first_bad_version is not None:
            position = walked.first_bad_version  # the walk stopped on it: the last one read
            bad_line = numbers[position - 1]
            check.first_bad_version = position
            check.reason = diagnose(last[0], position, walked.head_hash)
        for _ in stream:  # the rest of the file, for its malformed lines
            pass
    check.events = walked.events
    check.head_hash = walked.head_hash
    if check.malformed and (bad_line is None or check.malformed[0]["line"] < bad_line):
        bad_line = int(check.malformed[0]["line"])
        check.reason = str(check.malformed[0]["error"])
    if not numbers and not check.malformed:
        check.reason = "no events in the file"
    check.first_bad_line = bad_line
    check.ok = walked.ok and not check.malformed and bool(numbers)
    return check


@app.command("verify")
def verify_command(
    ctx: typer.Context,
    story: Annotated[
        str | None,
        typer.Argument(
            help="The story to verify on the server (with --file: each line must be of it).",
            show_default=False,
        ),
    ] = None,
    export_file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            help="Verify this export (JSON lines) offline, with no server.",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-walk the story's hash chain; exit 1 if it does not hold, naming the first bad version.

    With --file, verify an export (dateline audit export) offline: the first line that breaks the
    chain is named with its version and why, and every line that is not an envelope is listed.

    Examples:
      dateline audit verify syria-live
      dateline audit verify --file syria-live.jsonl
      dateline audit verify syria-live --file syria-live.jsonl --json
    """
    with reported():
        if export_file is not None:
            _verify_file(export_file, story, as_json)
        else:
            _verify_on_server(ctx, story, as_json)


def _verify_on_server(ctx: typer.Context, story: str | None, as_json: bool) -> None:
    """``GET /stories/{story}/verify``: what the server's walk found, then ``ChainBroken`` if bad."""
    if story is None:
        raise UsageError("name a STORY to verify on the server, or give --file")
    with api(ctx) as client:
        answer = client.get(f"/stories/{story}/verify")
    if as_json:
        _json(answer)
    elif answer.get("ok"):
        typer.echo(
            f"{story}: chain holds, {answer.get('events')} events, head hash {answer.get('head_hash')}"
        )
    else:
        typer.echo(
            f"{story}: chain BROKEN at version {answer.get('first_bad_version')} "
            f"({answer.get('events')} events walked)"
        )
    if not answer.get("ok"):
        raise ChainBroken(f"the chain of {story} does not hold")


def _verify_file(path: Path, story: str | None, as_json: bool) -> None:
    """The offline walk of an export (``check_file``): what it found, then ``ChainBroken`` if bad."""
    try:
        check = check_file(path, story)
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error}") from None
    if as_json:
        _json(check.to_dict())
    elif check.ok:
        typer.echo(f"{path}: chain holds, {check.events} events, head hash {check.head_hash}")
    else:
        if check.first_bad_line is not None:
            version = f", version {check.first_bad_version}" if check.first_bad_version else ""
            typer.echo(f"{path}: BROKEN at line {check.first_bad_line}{version}: {check.reason}")
        else:
            typer.echo(f"{path}: BROKEN: {check.reason}")
        for bad in check.malformed:
            typer.echo(f"  line {bad['line']}: {bad['error']}")
    if not check.ok:
        raise ChainBroken(f"the chain of {path} does not hold")


# -- corrections -------------------------------------------------------------------------------

FIXES = ("entry.corrected", "entry.retracted")


def _progress(*columns: str | ProgressColumn) -> Progress:
    """A progress display on stderr, only when stderr is a terminal (never in a log or a pipe)."""
    err = _stderr()
    return Progress(*columns, console=err, transient=True, disable=not err.is_terminal)


def _diff_text(diff: str | None) -> Text:
    """The changed lines of a unified diff, coloured (its headers are left to --json)."""
    text = Text()
    for line in (diff or "").splitlines():
        if line.startswith(("+++", "---", "@@")):
            continue
        if line.startswith("+"):
            style = "green"
        elif line.startswith("-"):
            style = "red"
        else:
            style = ""
        text.append(line + "\n", style=style)
    text.rstrip()
    return text


WIDE = 100
"""Below this many columns, corrections are listed as blocks rather than a table."""
STYLES = {"entry.corrected": "yellow", "entry.retracted": "red", "entry.edited": "dim"}


def _fix_blocks(out: Console, rows: list[dict[str, Any]]) -> None:
    """Each correction as a heading line, its note, and its diff below (for narrow terminals)."""
    for row in rows:
        head = Text()
        head.append(str(row["type"]).removeprefix("entry."), style=f"bold {STYLES[row['type']]}")
        head.append(f" {row['entry_id']}  v{row['version']}  {_short_time(row['recorded_at'])}")
        head.append(f"  {row['actor']}", style="dim")
        out.print(head)
        if row["note"]:
            out.print(Padding(Text(str(row["note"])), (0, 0, 0, 4), expand=False))
        out.print(Padding(_diff_text(row["diff"]), (0, 0, 0, 4), expand=False))
        out.print()


def _short_time(recorded_at: str) -> str:
    """``2026-11-24T18:50:03.123456Z`` as ``2026-11-24 18:50:03Z`` (--json keeps it whole)."""
    day, _, clock = recorded_at.partition("T")
    return f"{day} {clock[:8]}Z" if clock else recorded_at


@app.command()
def corrections(
    ctx: typer.Context,
    story: StoryArg,
    edits: Annotated[
        bool, typer.Option("--edits", help="Also list silent edits (entry.edited).")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """List every correction and retraction: time, actor, entry, note and the diff of the body.

    Reads the whole history, then each fixed entry's revisions.

    Examples:
      dateline audit corrections syria-live
      dateline audit corrections syria-live --edits --json
    """
    kinds = (*FIXES, "entry.edited") if edits else FIXES
    rows: list[dict[str, Any]] = []
    counting = _progress(SpinnerColumn(), TextColumn("{task.description}"), MofNCompleteColumn())
    with reported(), api(ctx) as client, counting as progress:
        task = progress.add_task("reading events", total=None)
        fixes: list[dict[str, Any]] = []
        for page in client.events_pages(story, limit=PAGE):
            fixes += [e for e in page if e["type"] in kinds]
            progress.advance(task, len(page))
        entries = list(dict.fromkeys(str(e["data"]["entry_id"]) for e in fixes))
        revisions: dict[tuple[str, int], dict[str, Any]] = {}
        listed = progress.add_task("reading revisions", total=len(entries))
        for entry in entries:
            answer = client.get(f"/stories/{story}/entries/{entry}/revisions")
            for revision in answer.get("revisions", []):
                revisions[(entry, int(revision["version"]))] = revision
            progress.advance(listed)
        for event in fixes:
            entry = str(event["data"]["entry_id"])
            revision = revisions.get((entry, int(event["version"])), {})
            rows.append(
                {
                    "version": event["version"],
                    "type": event["type"],
                    "entry_id": entry,
                    "actor": event["actor"],
                    "recorded_at": event["recorded_at"],
                    "note": event["data"].get("note"),
                    "body": revision.get("body", event["data"].get("body")),
                    "diff": revision.get("diff"),
                }
            )
    if as_json:
        _json(rows)
        return
    out = Console(highlight=False)
    if not rows:
        out.print(f"{story}: no corrections or retractions")
        return
    if out.width < WIDE:
        _fix_blocks(out, rows)
        return
    table = Table(title=f"Corrections and retractions of {story}", show_lines=True)
    for column in ("time", "v", "kind", "actor", "entry"):
        table.add_column(column, no_wrap=column != "actor")
    table.add_column("note", ratio=1)
    table.add_column("diff", ratio=2, overflow="fold")
    for row in rows:
        table.add_row(
            _short_time(str(row["recorded_at"])),
            str(row["version"]),
            Text(str(row["type"]).removeprefix("entry."), style=STYLES[row["type"]]),
            str(row["actor"]),
            str(row["entry_id"]),
            str(row["note"] or ""),
            _diff_text(row["diff"]),
        )
    out.print(table)


# -- export ------------------------------------------------------------------------------------


def _sink(output: str) -> tuple[IO[bytes], Path | None]:
    """Where export writes: stdout for ``-``, else a ``.part`` file renamed when complete."""
    if output == "-":
        return sys.stdout.buffer, None
    part = Path(output + ".part")
    try:
        return part.open("wb"), part
    except OSError as error:
        raise UsageError(f"cannot write {output}: {error}") from None


@app.command()
def export(
    ctx: typer.Context,
    story: StoryArg,
    output: Annotated[
        str, typer.Option("-o", "--output", help="The file to write; '-' is stdout.")
    ] = "-",
    from_version: Annotated[
        int, typer.Option("--from-version", min=1, help="Start at this version.")
    ] = 1,
    as_json: JsonOpt = False,
) -> None:
    """Export the story's events as JSON lines, each envelope exactly as stored.

    A progress bar shows on stderr. Verify the file offline with dateline audit verify --file.

    Examples:
      dateline audit export syria-live -o syria-live.jsonl
      dateline audit export syria-live | gzip > syria-live.jsonl.gz
    """
    count, head = 0, None
    with reported(), api(ctx) as client:
        total: int | None = None
        try:
            total = int(client.get(f"/stories/{story}", limit=1)["version"])
        except ApiUnreachable:
            raise
        except DatelineError:  # refused (a story not projected yet): a spinner, no total
            pass
        sink, part = _sink(output)
        try:
            progress = _progress(
                SpinnerColumn(), TextColumn(f"exporting {story}"), BarColumn(), MofNCompleteColumn()
            )
            with progress:
                task = progress.add_task("export", total=total)
                for page in client.events_pages(story, from_version=from_version, limit=PAGE):
                    sink.write(b"".join(canonical(event) + b"\n" for event in page))
                    count += len(page)
                    head = page[-1]["hash"] if page else head
                    done = count + from_version - 1
                    progress.update(task, completed=done, total=max(total or 0, done) or None)
            sink.flush()
        except (DatelineError, OSError) as error:
            if part is not None:
                sink.close()
                part.unlink(missing_ok=True)
            if isinstance(error, OSError):
                raise UsageError(f"cannot write {output}: {error}") from None
            raise
        if part is not None:
            sink.close()
            os.replace(part, output)
    where = "stdout" if output == "-" else output
    _stderr().print(f"exported {count} events of {story} to {where}")
    if as_json and output != "-":
        _json({"story": story, "file": output, "events": count, "head_hash": head})


# -- snapshot ----------------------------------------------------------------------------------


@app.command()
def snapshot(
    ctx: typer.Context,
    story: StoryArg,
    version: VersionOpt = None,
    at: AtOpt = None,
    output: Annotated[
        str, typer.Option("-o", "--output", help="The HTML file to write; '-' is stdout.")
    ] = "-",
    as_json: JsonOpt = False,
) -> None:
    """Save the reader page as it stood at a version or a time (HTML).

    Without --version or --at: the latest version.

    Examples:
      dateline audit snapshot syria-live --at 2026-11-24T18:50:00Z -o page.html
      dateline audit snapshot syria-live --version 12 -o v12.html
    """
    with reported():
        with api(ctx) as client:
            params = _when(client, story, version, at)
            response = client.request(
                "GET", f"/stories/{story}/replay", params={**params, "format": "html"}
            )
        page = response.content
        if output == "-":
            sys.stdout.buffer.write(page)
            sys.stdout.flush()
            return
        try:
            Path(output).write_bytes(page)
        except OSError as error:
            raise UsageError(f"cannot write {output}: {error}") from None
    if as_json:
        _json({"story": story, "file": output, "bytes": len(page), **params})
    else:
        typer.echo(f"saved {story} to {output} ({len(page)} bytes)")
