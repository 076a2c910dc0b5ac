"""Who may do what: every operation of /openapi.json called with every kind of credential
(issue 11, 9; CONTRACT "HTTP API": writes need an editor, history an auditor, tokens an admin,
an admin may do all, reads of current state are public).

The operations come from the served document, so a new route is in the matrix the day it is
declared; the role each says it needs (``x-dateline-role``) is held to the contract's table for
the routes the contract names. No token, another scheme's, an unknown or a revoked token is 401
``unauthorized``; a token of a role that may not is 403 ``forbidden``; a refused write appends
nothing, creates nothing and revokes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx

from tests.conftest import ADMIN_TOKEN
from tests.faults.conftest import store_agnostic

CONTRACT_ROLES = {
    ("POST", "/stories"): "editor",
    ("POST", "/stories/{story}/events"): "editor",
    ("GET", "/stories"): "public",
    ("GET", "/stories/{story}"): "public",
    ("GET", "/stories/{story}/events"): "auditor",
    ("GET", "/stories/{story}/replay"): "auditor",
    ("GET", "/stories/{story}/entries/{entry}/revisions"): "auditor",
    ("GET", "/stories/{story}/verify"): "auditor",
    ("GET", "/live/{story}"): "public",
    ("POST", "/tokens"): "admin",
    ("DELETE", "/tokens/{name}"): "admin",
    ("GET", "/healthz"): "public",
    ("GET", "/metrics"): "public",
}
"""The role each route of the contract's table needs ("public": none)."""
MAY = {
    "public": {"none", "bad", "other scheme", "revoked", "editor", "auditor", "admin"},
    "editor": {"editor", "admin"},
    "auditor": {"auditor", "admin"},
    "admin": {"admin"},
}
"""Which credentials may call an operation that needs each role."""
QUERIES = {"/stories/{story}/replay": {"version": "2"}}
"""Query parameters an operation needs to be answered 200 at all."""


def fresh(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@store_agnostic
def test_every_operation_refuses_every_credential_the_contract_refuses(
    api_url: str, editor_token: str, auditor_token: str, figure: Callable[[str, str], None]
) -> None:
    """Role x endpoint: 401 without a valid token, 403 for the wrong role, nothing written."""
    admin = httpx.Client(
        base_url=api_url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=15.0
    )
    story, entry = fresh("roles"), "e1"
    admin.post("/stories", json={"story": story, "title": "Roles"}).raise_for_status()
    published = {"type": "entry.published", "data": {"entry_id": entry, "body": "<p>x</p>"}}
    admin.post(f"/stories/{story}/events", json=published).raise_for_status()
    revoked = admin.post("/tokens", json={"role": "editor", "name": fresh("revoked")}).json()
    assert admin.delete(f"/tokens/{revoked['name']}").status_code == 204
    credentials = {
        "none": {},
        "bad": {"Authorization": "Bearer not-a-dateline-token"},
        "other scheme": {"Authorization": f"Basic {ADMIN_TOKEN}"},
        "revoked": {"Authorization": f"Bearer {revoked['token']}"},
        "editor": {"Authorization": f"Bearer {editor_token}"},
        "auditor": {"Authorization": f"Bearer {auditor_token}"},
        "admin": {"Authorization": f"Bearer {ADMIN_TOKEN}"},
    }

    def version() -> int:
        return len(admin.get(f"/stories/{story}/events").json()["events"])

    def write(path: str) -> tuple[str, dict[str, Any] | None, Callable[[], bool]]:
        """The request for a write, and a probe: did it leave a trace?"""
        if path == "/stories":
            opened = fresh("roles")

            def story_opened() -> bool:
                return admin.get(f"/stories/{opened}/events").status_code != 404

            return path, {"story": opened, "title": "Refused"}, story_opened
        if path == "/tokens":
            name = fresh("refused")

            def token_created() -> bool:
                return admin.delete(f"/tokens/{name}").status_code != 404

            return path, {"role": "admin", "name": name}, token_created
        if path == "/tokens/{name}":
            target = admin.post("/tokens", json={"role": "auditor", "name": fresh("target")})
            name = target.json()["name"]

            def token_revoked() -> bool:
                return admin.delete(f"/tokens/{name}").status_code != 204

            return f"/tokens/{name}", None, token_revoked
        at = version()

        def appended() -> bool:
            return version() != at

        body = (
            published | {"data": {"body": "<p>refused</p>"}} if path.endswith("/events") else None
        )
        concrete = path.replace("{story}", story).replace("{entry}", entry)
        assert "{" not in concrete, f"{path}: give the matrix a request for this write"
        return concrete, body, appended

    document = httpx.get(f"{api_url}/openapi.json").json()
    cells = attempts = written = 0
    wrong: list[str] = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            method = method.upper()
            role = operation["x-dateline-role"]
            named = CONTRACT_ROLES.get(("GET" if method == "HEAD" else method, path))
            assert named in (None, role), f"{method} {path}: the document says {role}"
            for who, headers in credentials.items():
                reading = method in ("GET", "HEAD")
                if reading:
                    target = path.replace("{story}", story).replace("{entry}", entry)
                    target = target.replace("{name}", "reader.js")
                    body, trace = None, None
                else:
                    target, body, trace = write(path)
                answer = httpx.request(
                    method,
                    f"{api_url}{target}",
                    params=QUERIES.get(path),
                    json=body,
                    headers=headers,
                    timeout=15.0,
                )
                cells += 1
                status = answer.status_code
                if who in MAY[role]:
                    if status in (401, 403) or status >= 500:
                        wrong.append(f"{method} {path} as {who}: {status} {answer.text[:120]}")
                    continue
                valid = who in MAY["auditor"] | MAY["editor"]
                expected, code = (403, "forbidden") if valid else (401, "unauthorized")
                got = answer.json()["error"]["code"] if status >= 400 and method != "HEAD" else code
                if (status, got) != (expected, code):
                    wrong.append(f"{method} {path} as {who}: {status} {got}, not {expected} {code}")
                if trace is not None:
                    attempts += 1
                    written += trace()
    operations_count = sum(len(ops) for ops in document["paths"].values())
    figure(
        "roles",
        f"unauthorized writes {written} of {attempts} attempts; role x endpoint cells checked "
        f"{cells} ({operations_count} operations x {len(credentials)} credentials), "
        f"wrong answers {len(wrong)}",
    )
    admin.close()
    assert not wrong, wrong
    assert written == 0
