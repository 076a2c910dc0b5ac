"""The store's partitions (``partitions upgrade``), run on the store itself, offline.

Rules (docs/cli.md "Partitions"; docs/operations.md "Outgrowing one Redis"):
- ``upgrade --to N`` moves every story of the store at ``--redis`` (or of the embedded store
  in ``--data-dir``, which it starts) to ``N`` partitions (64, 256 or 1,024), with every other
  Dateline process stopped (``services.store.repartition``); it prints what it moved and exits
  0. Run again after a crash or a Ctrl-C, it finishes the upgrade;
- refused (exit 2): a count that is not one of those, smaller than the store's, or a
  projector still connected; a store that cannot be reached exits 3.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from services.cli.errors import reported
from services.settings import Settings

app = typer.Typer(
    name="partitions",
    help="The store's partitions: how stories spread over a cluster's primaries.",
    no_args_is_help=True,
)


@app.command("upgrade")
def upgrade(
    to: Annotated[int, typer.Option("--to", help="The new count: 64, 256 or 1024.")],
    redis: Annotated[
        str | None,
        typer.Option("--redis", help="The store's URL (env DATELINE_REDIS_URL)."),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="The embedded store's data dir, when there is no --redis."),
    ] = None,
) -> None:
    """Move every story to TO partitions, with every Dateline process stopped first.

    Example:
      dateline partitions upgrade --to 256 --redis redis://valkey-1:6379
    """
    from services.run.partitions import main

    with reported():
        main(Settings.load(redis_url=redis, data_dir=data_dir), to, typer.echo)
