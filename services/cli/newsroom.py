"""The newsroom commands (``story``, ``publish`` … ``embed``), over the HTTP API.

Rules (CONTRACT "Command line", "Idempotency"):
- every write is one request: ``POST /stories`` or ``POST /stories/{story}/events`` with
  ``{type, data, expected_version?}``; the server decides, the command only reports;
- each invocation sends one ``Idempotency-Key`` (a fresh uuid4, or ``--idempotency-key``) and reuses
  it on its own retries (``services.cli.client``), so a retried command appends nothing twice; a script
  that pins the key can re-run a command whose outcome it did not see, safely;
- a body comes from ``--body HTML``, ``--body -`` (stdin) or ``--body-file PATH``, exactly as given:
  the server refuses HTML outside the safe subset (422, naming each tag), never strips it;
- the result goes to stdout, one line (``published e-3f2a as version 12 of syria-live``) or, with
  ``--json``, the envelope as stored (canonical JSON); errors go to stderr through
  ``services.cli.errors.reported``: exit 2 for a refusal, 3 when the API does not answer.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from events.chain import canonical
from events.embeds import EmbedKind
from events.errors import ApiUnreachable, UsageError
from services.cli.client import Api, api
from services.cli.errors import reported

StoryArg = Annotated[
    str, typer.Argument(help="The story's id (a-z, 0-9 and '-').", show_default=False)
]
EntryArg = Annotated[str, typer.Argument(help="The entry's id.", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the whole answer as JSON.")]
ExpectedOpt = Annotated[
    int | None,
    typer.Option(
        "--expected-version",
        min=0,
        help="Refuse (409 version_conflict) unless the story is at this version.",
    ),
]
KeyOpt = Annotated[
    str | None,
    typer.Option(
        "--idempotency-key",
        help="The Idempotency-Key to send (default: a fresh one per run). Re-running with the "
        "same key appends nothing twice.",
    ),
]
BodyOpt = Annotated[
    str | None,
    typer.Option("--body", help="The entry's HTML (safe subset), or '-' to read it from stdin."),
]
BodyFileOpt = Annotated[
    Path | None,
    typer.Option("--body-file", help="Read the entry's HTML from this file.", dir_okay=False),
]
HeadlineOpt = Annotated[str | None, typer.Option("--headline", help="A headline for the entry.")]

Envelope = dict[str, Any]


# -- shared ------------------------------------------------------------------------------------


def read_body(body: str | None, body_file: Path | None) -> str:
    """The body from ``--body`` (``-``: stdin) or ``--body-file``; exactly one of them."""
    if body is not None and body_file is not None:
        raise UsageError("give the body with --body or --body-file, not both")
    if body_file is not None:
        try:
            return body_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise UsageError(f"cannot read the body from {body_file}: {error}") from None
    if body == "-":
        return sys.stdin.read()
    if body is None:
        raise UsageError("a body is needed: --body HTML, --body - (stdin) or --body-file PATH")
    return body


def show(envelope: Envelope, as_json: bool, summary: str) -> None:
    """The result on stdout: the summary line, or the envelope as stored."""
    typer.echo(canonical(envelope).decode() if as_json else summary)


def _sent(action: Callable[[Api, str], Envelope], ctx: typer.Context, key: str | None) -> Envelope:
    """Run one write with its key; a write that got no answer says how to re-run it safely."""
    key = key or uuid.uuid4().hex
    with api(ctx) as client:
        try:
            return action(client, key)
        except ApiUnreachable as error:
            raise ApiUnreachable(
                f"{error.message}. The write may or may not be stored: run the command again "
                f"with --idempotency-key {key} and it will land at most once"
            ) from None


def append(
    ctx: typer.Context,
    story: str,
    event_type: str,
    data: dict[str, Any],
    *,
    expected_version: int | None,
    key: str | None,
) -> Envelope:
    """``POST /stories/{story}/events`` with the run's key; the stored envelope."""
    fields = {k: v for k, v in data.items() if v is not None}
    return _sent(
        lambda client, k: client.append(
            story, event_type, fields, key=k, expected_version=expected_version
        ),
        ctx,
        key,
    )


def write(
    ctx: typer.Context,
    story: str,
    event_type: str,
    data: Callable[[], dict[str, Any]],
    expected_version: int | None,
    key: str | None,
    as_json: bool,
    summary: Callable[[Envelope], str],
) -> None:
    """One newsroom write: build its data, append it with the run's key, print the result.

    Building the data (reading a body from a file or stdin) and the append both report their
    refusals the same way: the message on stderr and the contract's exit code.
    """
    with reported():
        envelope = append(
            ctx, story, event_type, data(), expected_version=expected_version, key=key
        )
    show(envelope, as_json, summary(envelope))


def _of(envelope: Envelope) -> str:
    return f"version {envelope['version']} of {envelope['story']}"


def _entry(envelope: Envelope) -> str:
    return str(envelope["data"].get("entry_id"))


# -- stories -----------------------------------------------------------------------------------

story_app = typer.Typer(
    name="story", help="Open, update and close stories (editor token).", no_args_is_help=True
)


@story_app.command("open")
def story_open(
    ctx: typer.Context,
    story: StoryArg,
    title: Annotated[str, typer.Option("--title", help="The story's title.", show_default=False)],
    summary: Annotated[str | None, typer.Option("--summary", help="A short summary.")] = None,
    key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Open a story: story.opened, as version 1.

    Example:
      dateline story open syria-live --title "Syria, live" --summary "The latest from Damascus"
    """
    body = {"story": story, "title": title}
    if summary is not None:
        body["summary"] = summary
    with reported():
        envelope = _sent(lambda client, k: client.open_story(body, key=k), ctx, key)
    show(envelope, as_json, f"opened {envelope['story']} as version {envelope['version']}")


@story_app.command("update")
def story_update(
    ctx: typer.Context,
    story: StoryArg,
    title: Annotated[str | None, typer.Option("--title", help="A new title.")] = None,
    summary: Annotated[str | None, typer.Option("--summary", help="A new summary.")] = None,
    expected_version: ExpectedOpt = None,
    key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Change the story's title or summary: story.updated.

    Example:
      dateline story update syria-live --title "Syria: ceasefire talks, live"
    """

    def fields() -> dict[str, Any]:
        if title is None and summary is None:
            raise UsageError("give --title, --summary or both")
        return {"title": title, "summary": summary}

    write(
        ctx,
        story,
        "story.updated",
        fields,
        expected_version,
        key,
        as_json,
        lambda e: f"updated {e['story']} as version {e['version']}",
    )


@story_app.command("close")
def story_close(
    ctx: typer.Context,
    story: StoryArg,
    note: Annotated[str | None, typer.Option("--note", help="A closing note for readers.")] = None,
    expected_version: ExpectedOpt = None,
    key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Close the story: story.closed. It takes no new entries; fixes still land.

    Example:
      dateline story close syria-live --note "This live blog has ended."
    """
    write(
        ctx,
        story,
        "story.closed",
        lambda: {"note": note},
        expected_version,
        key,
        as_json,
        lambda e: f"closed {e['story']} as version {e['version']}",
    )


# -- entries -----------------------------------------------------------------------------------


def publish(
    ctx: typer.Context,
    story: StoryArg,
    body: BodyOpt = None,
    body_file: BodyFileOpt = None,
    headline: HeadlineOpt = None,
    key_event: Annotated[
        bool, typer.Option("--key-event", help="List it among the story's key events.")
    ] = False,
    time_label: Annotated[
        str | None, typer.Option("--time-label", help='The time readers see, e.g. "1850 GMT".')
    ] = None,
    entry_id: Annotated[
        str | None, typer.Option("--entry-id", help="The entry's id (default: the server picks).")
    ] = None,
    expected_version: ExpectedOpt = None,
    key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Publish an entry: entry.published.

    Examples:
      dateline publish syria-live --body "<p>Talks resume in Geneva.</p>" --time-label "1850 GMT"
      dateline publish syria-live --body-file update.html --headline "Ceasefire agreed" --key-event
      echo "<p>More soon.</p>" | dateline publish syria-live --body - --entry-id e-more
    """
    write(
        ctx,
        story,
        "entry.published",
        lambda: {
            "body": read_body(body, body_file),
            "headline": headline,
            "key_event": key_event or None,
            "time_label": time_label,
            "entry_id": entry_id,
        },
        expected_version,
        key,
        as_json,
        lambda e: f"published {_entry(e)} as {_of(e)}",
    )


def correct(
    ctx: typer.Context,
    story: StoryArg,
    entry: EntryArg,
    note: Annotated[
        str, typer.Option("--note", help="The correction note readers see.", show_default=False)
    ],
    body: BodyOpt = None,
    body_file: BodyFileOpt = None,
    expected_version: ExpectedOpt = None,
    key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Correct an entry: entry.corrected, a new body with a note readers see.

    Example:
      dateline correct syria-live e-3f2a --body "<p>Winds of 130 km/h.</p>" --note "We said 150 km/h."
    """
    write(
        ctx,
        story,
        "entry.corrected",
        lambda: {"entry_id": entry, "body": read_body(body, body_file), "note": note},
        expected_version,
        key,
        as_json,
        lambda e: f"corrected {_entry(e)} as {_of(e)}",
    )


def edit(
    ctx: typer.Context,
    story: StoryArg,
    entry: EntryArg,
    body: BodyOpt = None,
    body_file: BodyFileOpt = None,
    headline: HeadlineOpt = None,
    expected_version: ExpectedOpt = None,
    key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Fix an entry silently (a typo): entry.edited; readers see no note, auditors see it.

    Example:
      dateline edit syria-live e-3f2a --body "<p>Talks resume in Geneva.</p>"
    """
    write(
        ctx,
        story,
        "entry.edited",
        lambda: {"entry_id": entry, "body": read_body(body, body_file), "headline": headline},
        expected_version,
        key,
        as_json,
        lambda e: f"edited {_entry(e)} as {_of(e)}",
    )


def retract(
    ctx: typer.Context,
    story: StoryArg,
    entry: EntryArg,
    note: Annotated[
        str,
        typer.Option("--note", help="Why it was withdrawn (readers see it).", show_default=False),
    ],
    expected_version: ExpectedOpt = None,
    key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Retract an entry: entry.retracted; readers see a tombstone with the note.

    Example:
      dateline retract syria-live e-3f2a --note "This report could not be confirmed."
    """
    write(
        ctx,
        story,
        "entry.retracted",
        lambda: {"entry_id": entry, "note": note},
        expected_version,
        key,
        as_json,
        lambda e: f"retracted {_entry(e)} as {_of(e)}",
    )


def pin(
    ctx: typer.Context,
    story: StoryArg,
    entry: EntryArg,
    expected_version: ExpectedOpt = None,
    key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Pin an entry on top of the story: entry.pinned (it moves the pin from any other).

    Example:
      dateline pin syria-live e-3f2a
    """
    write(
        ctx,
        story,
        "entry.pinned",
        lambda: {"entry_id": entry},
        expected_version,
        key,
        as_json,
        lambda e: f"pinned {_entry(e)} as {_of(e)}",
    )


def unpin(
    ctx: typer.Context,
    story: StoryArg,
    entry: EntryArg,
    expected_version: ExpectedOpt = None,
    key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Unpin the pinned entry: entry.unpinned.

    Example:
      dateline unpin syria-live e-3f2a
    """
    write(
        ctx,
        story,
        "entry.unpinned",
        lambda: {"entry_id": entry},
        expected_version,
        key,
        as_json,
        lambda e: f"unpinned {_entry(e)} as {_of(e)}",
    )


# -- embeds ------------------------------------------------------------------------------------

embed_app = typer.Typer(
    name="embed",
    help="Attach embeds to entries and remove them (editor token).",
    no_args_is_help=True,
)


@embed_app.command("attach")
def embed_attach(
    ctx: typer.Context,
    story: StoryArg,
    entry: EntryArg,
    kind: Annotated[EmbedKind, typer.Option("--kind", help="What it is.", show_default=False)],
    url: Annotated[
        str, typer.Option("--url", help="https only; video, social and map from the allow-list.")
    ],
    caption: Annotated[str | None, typer.Option("--caption", help="A caption.")] = None,
    alt: Annotated[str | None, typer.Option("--alt", help="Alternative text.")] = None,
    embed_id: Annotated[
        str | None, typer.Option("--embed-id", help="The embed's id (default: the server picks).")
    ] = None,
    expected_version: ExpectedOpt = None,
    key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Attach an embed to an entry: embed.attached.

    Examples:
      dateline embed attach syria-live e-3f2a --kind video --url https://youtu.be/abc123
      dateline embed attach syria-live e-3f2a --kind image --url https://example.org/a.jpg --alt "A crowd in the square"
    """
    write(
        ctx,
        story,
        "embed.attached",
        lambda: {
            "entry_id": entry,
            "kind": kind,
            "url": url,
            "caption": caption,
            "alt": alt,
            "embed_id": embed_id,
        },
        expected_version,
        key,
        as_json,
        lambda e: f"attached {e['data'].get('embed_id')} to {_entry(e)} as {_of(e)}",
    )


@embed_app.command("remove")
def embed_remove(
    ctx: typer.Context,
    story: StoryArg,
    entry: EntryArg,
    embed: Annotated[str, typer.Argument(help="The embed's id.", show_default=False)],
    expected_version: ExpectedOpt = None,
    key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove an embed from an entry: embed.removed.

    Example:
      dateline embed remove syria-live e-3f2a map-1
    """
    write(
        ctx,
        story,
        "embed.removed",
        lambda: {"entry_id": entry, "embed_id": embed},
        expected_version,
        key,
        as_json,
        lambda e: f"removed {embed} from {_entry(e)} as {_of(e)}",
    )


def register(app: typer.Typer) -> None:
    """Add the newsroom commands to the ``dateline`` app."""
    app.add_typer(story_app)
    for command in (publish, correct, edit, retract, pin, unpin):
        app.command()(command)
    app.add_typer(embed_app)
