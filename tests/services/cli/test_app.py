"""The ``dateline`` program: global options from the environment, exit codes as a process, help."""

from __future__ import annotations

import pytest

from services.cli.app import app
from tests.conftest import free_port
from tests.services.cli.dateline import QUIET_ENV, run_module, runner, state


def test_python_m_services_publishes_from_stdin_with_the_environment(
    api_url: str, editor_token: str, opened: str
) -> None:
    """A real process: DATELINE_API_URL and DATELINE_TOKEN, the body on stdin, exit 0."""
    proc = run_module(
        "publish",
        opened,
        "--entry-id",
        "piped",
        "--body",
        "-",
        stdin="<p>Through a pipe.</p>",
        DATELINE_API_URL=api_url,
        DATELINE_TOKEN=editor_token,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"published piped as version 2 of {opened}\n"
    assert state(api_url, opened, 2)["entries"][0]["body"] == "<p>Through a pipe.</p>"


def test_python_m_services_refusals_and_no_server_exit_2_and_3(
    api_url: str, editor_token: str, opened: str
) -> None:
    """A real process: a refused body exits 2 naming the tag; a closed port exits 3."""
    refused = run_module(
        "--api-url",
        api_url,
        "--token",
        editor_token,
        "publish",
        opened,
        "--body",
        "<iframe></iframe>",
    )
    assert refused.returncode == 2
    assert "tag <iframe>" in refused.stderr
    assert refused.stdout == ""
    gone = run_module(
        "--api-url", f"http://127.0.0.1:{free_port()}", "--token", "t", "pin", opened, "e1"
    )
    assert gone.returncode == 3
    assert "no answer" in gone.stderr
    assert "--idempotency-key" in gone.stderr


OLDER = [[], ["serve"], ["api"], ["projector"], ["gateway"], ["demo"], ["tail"]]

GROUPS = [["token"], ["story"], ["embed"]]

NEWSROOM = [
    ["token", "create"],
    ["token", "revoke"],
    ["story", "open"],
    ["story", "update"],
    ["story", "close"],
    ["publish"],
    ["correct"],
    ["edit"],
    ["retract"],
    ["pin"],
    ["unpin"],
    ["embed", "attach"],
    ["embed", "remove"],
]


@pytest.mark.parametrize("command", OLDER + GROUPS + NEWSROOM, ids=lambda c: " ".join(c) or "-")
def test_help_of_every_command_exits_0(command: list[str]) -> None:
    """--help works for each command; the newsroom commands show examples."""
    result = runner.invoke(app, [*command, "--help"], env=QUIET_ENV)
    assert result.exit_code == 0, result.stderr
    assert "Usage" in result.stdout
    if command in NEWSROOM:
        assert "Example" in result.stdout
        assert f"dateline {' '.join(command)}" in result.stdout


def test_the_global_options_are_listed_with_their_environment() -> None:
    """--token and --api-url are in dateline --help, with their environment variables."""
    result = runner.invoke(app, ["--help"], env=QUIET_ENV)
    for name in ("--token", "DATELINE_TOKEN", "--api-url", "DATELINE_API_URL"):
        assert name in result.stdout


@pytest.mark.parametrize(
    ("command", "variable"),
    [
        (["publish", "some-story", "--body", "<p>x</p>"], "DATELINE_HTTP_PORT"),
        (["serve"], "DATELINE_HTTP_PORT"),
        (["tail", "some-story"], "DATELINE_WS_PORT"),
    ],
)
def test_a_setting_that_cannot_be_read_is_one_line_and_exit_2(
    command: list[str], variable: str
) -> None:
    """``DATELINE_HTTP_PORT=abc`` names the setting on one line of stderr and exits 2."""
    done = run_module(*command, **{variable: "abc"})
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: a setting cannot be read: {variable}: ")
    assert "Traceback" not in done.stderr
