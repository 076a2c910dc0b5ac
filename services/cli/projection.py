"""The projection commands (``projection parked``, ``projection retry``), over the HTTP API.

Rules (docs/cli.md "Projection"):
- ``parked`` lists every story whose projection is parked behind an event it cannot fold: story,
  version, event type, error, when and by which projector; it exits 0 with nothing parked and 1
  with anything parked, so a check can alarm on it (auditor or admin token);
- ``retry STORY`` unparks the story and has it folded again from where it stopped (admin
  token): once the fold is fixed the story catches up; if not, it is parked again;
- a refusal (403, ``unknown_story`` for a story that is not parked) exits 2 through
  ``services.cli.errors.reported``.
"""

from __future__ import annotations

from typing import Annotated

import orjson
import typer

from services.cli.client import api
from services.cli.errors import reported
from services.cli.newsroom import JsonOpt

app = typer.Typer(
    name="projection",
    help="Stories whose projection is parked behind a poison event, and their retry.",
    no_args_is_help=True,
)


@app.command("parked")
def parked(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List the parked stories (auditor or admin token); exit 1 if there are any.

    Example:
      dateline projection parked
    """
    with reported(), api(ctx) as client:
        answer = client.get("/projection/parked")
    letters = answer["parked"]
    if as_json:
        typer.echo(orjson.dumps(answer).decode())
    elif not letters:
        typer.echo("no story is parked")
    for letter in [] if as_json else letters:
        typer.echo(
            f"{letter['story']} parked at version {letter['version']} ({letter['type']}),"
            f" {letter['parked_at']} by {letter['by']} after {letter['deliveries']} deliveries:"
            f" {letter['error']}"
        )
    if letters:
        raise typer.Exit(1)


@app.command("retry")
def retry(
    ctx: typer.Context,
    story: Annotated[str, typer.Argument(help="The parked story.", show_default=False)],
    as_json: JsonOpt = False,
) -> None:
    """Unpark a story and fold it again from where it stopped (admin token).

    Example:
      dateline projection retry election-night
    """
    with reported(), api(ctx) as client:
        answer = client.post(f"/projection/parked/{story}/retry", {})
    if as_json:
        typer.echo(orjson.dumps(answer).decode())
        return
    typer.echo(f"unparked {story} (parked at version {answer['version']}); folding it again")
