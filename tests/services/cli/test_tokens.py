"""``dateline token create`` and ``token revoke`` against the running API: the token, refusals, usage errors."""

from __future__ import annotations

import json
import uuid

from tests.conftest import ADMIN_TOKEN
from tests.services.cli.dateline import dateline


def test_token_create_prints_a_token_that_works(api_url: str, story_id: str) -> None:
    """The admin creates an editor token; stdout is the token alone, and it can open a story."""
    name = f"jane-{uuid.uuid4().hex[:6]}"
    result = dateline(api_url, ADMIN_TOKEN, "token", "create", "--role", "editor", "--name", name)
    assert result.exit_code == 0, result.stderr
    token = result.stdout.strip()
    assert token.startswith("dl_")
    assert "\n" not in token
    assert f"editor:{name}" in result.stderr

    opened = dateline(api_url, token, "story", "open", story_id, "--title", "By Jane", "--json")
    assert opened.exit_code == 0, opened.stderr
    assert json.loads(opened.stdout)["actor"] == f"editor:{name}"


def test_token_create_json_prints_the_whole_answer(api_url: str) -> None:
    """--json prints {token, role, name}; a server-picked name is role-<hex>."""
    result = dateline(api_url, ADMIN_TOKEN, "token", "create", "--role", "auditor", "--json")
    assert result.exit_code == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["role"] == "auditor"
    assert answer["name"].startswith("auditor-")
    assert answer["token"].startswith("dl_")


def test_an_editor_cannot_create_tokens(api_url: str, editor_token: str) -> None:
    """The API's 403 is a refusal: exit 2, with its message and code on stderr."""
    result = dateline(api_url, editor_token, "token", "create", "--role", "admin")
    assert result.exit_code == 2
    assert "forbidden" in result.stderr
    assert "admin token" in result.stderr
    assert result.stdout == ""


def test_a_taken_token_name_is_refused(api_url: str) -> None:
    """A second token with the same name: exit 2 token_name_taken."""
    name = f"dup-{uuid.uuid4().hex[:6]}"
    first = dateline(api_url, ADMIN_TOKEN, "token", "create", "--role", "editor", "--name", name)
    assert first.exit_code == 0, first.stderr
    second = dateline(api_url, ADMIN_TOKEN, "token", "create", "--role", "editor", "--name", name)
    assert second.exit_code == 2
    assert "token_name_taken" in second.stderr


def test_token_revoke_stops_the_token_at_once(api_url: str, story_id: str) -> None:
    """A revoked token is refused on its next write (401, exit 2)."""
    name = f"gone-{uuid.uuid4().hex[:6]}"
    made = dateline(api_url, ADMIN_TOKEN, "token", "create", "--role", "editor", "--name", name)
    token = made.stdout.strip()
    revoked = dateline(api_url, ADMIN_TOKEN, "token", "revoke", name)
    assert revoked.exit_code == 0, revoked.stderr
    assert revoked.stdout.strip() == f"revoked {name}"
    refused = dateline(api_url, token, "story", "open", story_id, "--title", "T")
    assert refused.exit_code == 2
    assert "unauthorized" in refused.stderr


def test_an_unknown_role_is_a_usage_error(api_url: str) -> None:
    """--role must be editor, auditor or admin: exit 2 before anything is sent."""
    result = dateline(api_url, ADMIN_TOKEN, "token", "create", "--role", "owner")
    assert result.exit_code == 2
    assert "owner" in result.stderr
