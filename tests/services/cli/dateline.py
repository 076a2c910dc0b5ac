"""Running ``dateline`` in tests: in-process (typer's runner) and as its own process."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import httpx
from click.testing import Result
from typer.testing import CliRunner

from services.cli.app import app
from tests.conftest import ADMIN_TOKEN, ROOT

runner = CliRunner()
QUIET_ENV = {"COLUMNS": "200", "DATELINE_TOKEN": None, "DATELINE_API_URL": None}


def dateline(api_url: str, token: str | None, *args: str, stdin: str | None = None) -> Result:
    """Run ``dateline --api-url … --token … ARGS`` in-process."""
    given = ["--api-url", api_url] + (["--token", token] if token else [])
    return runner.invoke(app, [*given, *args], input=stdin, env=QUIET_ENV)


def run_module(
    *args: str, stdin: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m services ARGS`` as its own process."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DATELINE_")}
    return subprocess.run(
        [sys.executable, "-m", "services", *args],
        cwd=ROOT,
        env={**environment, "COLUMNS": "200", **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def state(api_url: str, story: str, version: int) -> dict[str, Any]:
    """The story's state once the projection has reached ``version``."""
    r = httpx.get(f"{api_url}/stories/{story}", params={"min_version": version, "limit": 500})
    r.raise_for_status()
    return dict(r.json())


def head(api_url: str, story: str) -> int:
    """The story's version in the record (the events, not the projection)."""
    r = httpx.get(
        f"{api_url}/stories/{story}/events",
        params={"limit": 10_000},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    r.raise_for_status()
    return len(r.json()["events"])


def published(
    api_url: str, token: str, story: str, entry: str, body: str = "<p>First.</p>"
) -> None:
    """Publish ``entry`` into ``story`` through the CLI."""
    result = dateline(api_url, token, "publish", story, "--entry-id", entry, "--body", body)
    assert result.exit_code == 0, result.stderr
