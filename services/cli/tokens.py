"""The token commands (``token create``, ``token revoke``), over the HTTP API, for admins.

Rules (CONTRACT "HTTP API", "Command line"; docs/cli.md "Tokens"):
- ``create`` posts ``/tokens`` and prints the new token alone on stdout, so a script can capture
  it; what was created goes to stderr. The server keeps only its hash: it is shown this once;
- ``revoke`` deletes ``/tokens/{name}``: the token stops working at once, on every server;
- both need an admin token; a refusal (403, ``token_name_taken``, ``unknown_token``) exits 2
  through ``services.cli.errors.reported``.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
import typer

from events.stamp import Role
from services.cli.client import api
from services.cli.errors import reported
from services.cli.newsroom import JsonOpt

app = typer.Typer(
    name="token", help="Create and revoke API tokens (admin token).", no_args_is_help=True
)


@app.command("create")
def create(
    ctx: typer.Context,
    role: Annotated[
        Role, typer.Option("--role", help="What the token may do.", show_default=False)
    ],
    name: Annotated[
        str | None,
        typer.Option("--name", help="Its name (the actor is role:name); default role-<hex>."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a token and print it; it is shown only this once.

    Needs an admin token (--token or DATELINE_TOKEN). The new token alone goes to stdout, so a
    script can capture it.

    Examples:
      dateline --token $ADMIN token create --role editor --name jane
      export DATELINE_TOKEN=$(dateline --token $ADMIN token create --role auditor)
    """
    body: dict[str, Any] = {"role": role}
    if name is not None:
        body["name"] = name
    with reported(), api(ctx) as client:
        answer = client.post("/tokens", body)
    if as_json:
        typer.echo(orjson.dumps(answer).decode())
        return
    typer.echo(answer["token"])
    typer.echo(
        f"created {answer['role']}:{answer['name']}; keep it, it is not shown again", err=True
    )


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The token's name.", show_default=False)],
    as_json: JsonOpt = False,
) -> None:
    """Revoke a token at once, on every server (admin token).

    Example:
      dateline token revoke jane
    """
    with reported(), api(ctx) as client:
        client.request("DELETE", f"/tokens/{name}")
    typer.echo(orjson.dumps({"revoked": name}).decode() if as_json else f"revoked {name}")
