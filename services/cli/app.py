"""The ``dateline`` command line (CONTRACT.md "Command line"), with typer and rich: the app, its
global options, the server commands and ``tail``; the newsroom, token and audit commands join it.

Exit codes: 0 done; 1 a check failed; 2 usage error or input the server refused; 3 server
unreachable. Every command reports its errors through ``services.cli.errors.reported`` (the one
mapping). Messages go to stderr, results to stdout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from events.errors import UsageError
from services.cli import audit, newsroom, partitions, projection, tokens
from services.cli.errors import report, reported
from services.settings import Settings

app = typer.Typer(
    name="dateline",
    help="Dateline: event-sourced live blogs with a hash-chained, auditable history.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

RedisOpt = Annotated[
    str | None,
    typer.Option("--redis", help="Redis 7+/Valkey 8+ URL (env DATELINE_REDIS_URL)."),
]
DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", help="Where the embedded Valkey keeps its data (env DATELINE_DATA_DIR)."
    ),
]
HostOpt = Annotated[str | None, typer.Option("--host", help="Interface to listen on.")]
HttpPortOpt = Annotated[int | None, typer.Option("--http-port", help="HTTP API port (8000).")]
WsPortOpt = Annotated[int | None, typer.Option("--ws-port", help="Websocket gateway port (8001).")]
HttpWorkersOpt = Annotated[
    int,
    typer.Option(
        "--http-workers",
        envvar="DATELINE_HTTP_WORKERS",
        show_envvar=True,
        min=1,
        max=16,
        help="API worker processes sharing the HTTP port (1; see docs/operations.md).",
    ),
]


@app.callback()
def options(
    ctx: typer.Context,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="DATELINE_TOKEN",
            show_envvar=True,
            help="API token for the newsroom, token and audit commands.",
        ),
    ] = None,
    api_url: Annotated[
        str | None,
        typer.Option(
            "--api-url",
            envvar="DATELINE_API_URL",
            show_envvar=True,
            help="The HTTP API (default http://127.0.0.1:8000).",
        ),
    ] = None,
) -> None:
    """Dateline: event-sourced live blogs with a hash-chained, auditable history."""
    from services.cli.client import Target

    with reported():
        ctx.obj = Target.of(api_url, token)


@app.command()
def serve(
    redis: RedisOpt = None,
    data_dir: DataDirOpt = None,
    host: HostOpt = None,
    http_port: HttpPortOpt = None,
    ws_port: WsPortOpt = None,
    http_workers: HttpWorkersOpt = 1,
) -> None:
    """API, projector and gateway as worker processes; an embedded Valkey unless --redis."""
    from services.run.supervisor import main

    with reported():
        settings = Settings.load(
            redis_url=redis, data_dir=data_dir, host=host, http_port=http_port, ws_port=ws_port
        )
        code = main(settings, report, http_workers=http_workers)
    raise typer.Exit(code)


@app.command()
def api(
    redis: RedisOpt = None,
    host: HostOpt = None,
    http_port: HttpPortOpt = None,
) -> None:
    """The HTTP API alone, on the store at --redis (for compose and scale-out)."""
    from services.run.serve import main

    with reported():
        settings = _need_redis(redis_url=redis, host=host, http_port=http_port)
        main(settings, api=True, projector=False, gateway=False)


@app.command()
def projector(redis: RedisOpt = None) -> None:
    """The projector alone, on the store at --redis (run several: they share the work)."""
    from services.run.serve import main

    with reported():
        main(_need_redis(redis_url=redis), api=False, projector=True, gateway=False)


@app.command()
def gateway(
    redis: RedisOpt = None,
    host: HostOpt = None,
    ws_port: WsPortOpt = None,
    http_port: HttpPortOpt = None,
) -> None:
    """The websocket gateway alone, on the store at --redis (run several behind a balancer)."""
    from services.run.serve import main

    with reported():
        settings = _need_redis(redis_url=redis, host=host, ws_port=ws_port, http_port=http_port)
        main(settings, api=False, projector=False, gateway=True)


@app.command()
def demo(
    redis: RedisOpt = None,
    data_dir: DataDirOpt = None,
    host: HostOpt = None,
    http_port: HttpPortOpt = None,
    ws_port: WsPortOpt = None,
    pace: Annotated[
        float | None,
        typer.Option("--pace", min=0, help="Seconds between updates (default 2 to 4; 0: at once)."),
    ] = None,
    story: Annotated[
        str, typer.Option("--story", help="The demo story's id.")
    ] = "demo-storm-oriane",
    http_workers: HttpWorkersOpt = 1,
) -> None:
    """`serve` plus a sample story played in live, through the API; prints the reader URL."""
    from events.ids import is_id
    from services.demo.player import player
    from services.run.supervisor import main

    with reported():
        if not is_id(story):
            raise UsageError(f"{story!r} is not a story id (a-z, 0-9 and '-')")
        settings = Settings.load(
            redis_url=redis, data_dir=data_dir, host=host, http_port=http_port, ws_port=ws_port
        )
        code = main(settings, report, http_workers=http_workers, extra=player(story, pace))
    raise typer.Exit(code)


@app.command()
def tail(
    story: Annotated[str, typer.Argument(help="The story to follow.")],
    ws_url: Annotated[
        str | None,
        typer.Option("--ws-url", help="The gateway (env DATELINE_WS_URL; ws://127.0.0.1:8001/ws)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Each frame as a JSON line.")] = False,
) -> None:
    """Follow a story live in the terminal, over the websocket gateway (Ctrl-C to stop)."""
    from services.cli.tail import main

    with reported():
        main(story, ws_url or Settings.load().public_ws_url(), as_json=as_json)


def _need_redis(**given: object) -> Settings:
    """The settings of a service run alone, which never starts an embedded store."""
    settings = Settings.load(**given)
    if not settings.redis_url:
        raise UsageError("--redis URL (or DATELINE_REDIS_URL) is required")
    return settings


app.add_typer(tokens.app)
newsroom.register(app)
app.add_typer(audit.app)
app.add_typer(projection.app)
app.add_typer(partitions.app)


def main() -> None:
    app()
