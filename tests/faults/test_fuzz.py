"""API fuzzing with schemathesis against the served ``/openapi.json`` (issue 11, 9).

Every operation the document lists gets generated requests, valid by its schema (positive) and
not (negative), at random story ids and at a real story with an entry, each sent as admin,
editor, auditor or with no token in turn. Every answer is held to the contract and to the
document: no 5xx; every API error is ``{"error": {"code", "message", "details"}}`` with a code the
error tree gives that status (the reader page alone answers people, in HTML); and schemathesis'
own checks: the status is documented, so is the content type, and the body fits its schema.

Stateful runs (schemathesis' state machine) need OpenAPI links the document does not declare;
the pass at a real story (an entry, a correction, an embed, the pin) covers a story with history.
"""

from __future__ import annotations

import contextlib
import itertools
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator

import httpx
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup

from events.errors import DatelineError
from services.http.app import create_app
from services.settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.faults.conftest import scaled, store_agnostic

EXAMPLES = scaled(20, 300)
"""Generated requests per operation, per mode (positive, negative) and per target (random ids,
the real story): up to 80 an operation in CI, about 1,300 cases in all."""
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
PAGES = frozenset({"/live/{story}"})
"""Operations that answer people, in HTML, errors included (CONTRACT "Reader page")."""


def _tree(kind: type[DatelineError]) -> Iterator[type[DatelineError]]:
    yield kind
    for sub in kind.__subclasses__():
        yield from _tree(sub)


CODES = frozenset((kind.status, kind.code) for kind in _tree(DatelineError))
"""Every (status, code) pair the one error tree can answer (``events/errors.py``)."""


def off_contract(status: int, body: object) -> str | None:
    """Why an error body is not the contract's, or None when it is."""
    if not isinstance(body, dict) or set(body) != {"error"}:
        return "not {error: ...}"
    error = body["error"]
    if not isinstance(error, dict) or set(error) != {"code", "message", "details"}:
        return "error is not {code, message, details}"
    if not isinstance(error["code"], str) or not isinstance(error["message"], str):
        return "code or message is not a string"
    if (status, error["code"]) not in CODES:
        return f"code {error['code']!r} is not the tree's for {status}"
    return None


def seed(api_url: str) -> tuple[str, str]:
    """A story with an entry that has a correction, an embed and the pin: the fuzz's real target."""
    story, entry = f"fz-{uuid.uuid4().hex[:12]}", "e1"
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with httpx.Client(base_url=api_url, headers=auth, timeout=15.0) as http:
        http.post("/stories", json={"story": story, "title": "Fuzzed"}).raise_for_status()
        for kind, data in (
            ("entry.published", {"entry_id": entry, "body": "<p>one</p>", "key_event": True}),
            ("entry.corrected", {"entry_id": entry, "body": "<p>two</p>", "note": "fixed"}),
            ("embed.attached", {"entry_id": entry, "kind": "image", "url": "https://e.org/a"}),
            ("entry.pinned", {"entry_id": entry}),
        ):
            posted = http.post(f"/stories/{story}/events", json={"type": kind, "data": data})
            posted.raise_for_status()
    return story, entry


def routed(routes: Iterable[object]) -> Iterator[tuple[str, str]]:
    """(method, path) of every route, into included routers (none has a prefix)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from routed(included.routes)
        for method in getattr(route, "methods", None) or ():
            yield method, str(getattr(route, "path", ""))


@store_agnostic
def test_every_route_the_app_serves_is_in_the_document(api_url: str) -> None:
    """The served /openapi.json lists every method and path the app routes, and no other."""
    app = create_app(Settings(), "redis://127.0.0.1:1")  # never connects: only its routes
    served = {
        (method, path)
        for method, path in routed(app.routes)
        if path not in ("/openapi.json", "/redoc") and not path.startswith("/docs")
    }
    document = httpx.get(f"{api_url}/openapi.json").json()
    listed = {(m.upper(), p) for p, ops in document["paths"].items() for m in ops}
    assert listed == served
    ids = [op["operationId"] for ops in document["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))


@store_agnostic
def test_generated_requests_get_no_5xx_and_the_answers_the_document_states(
    api_url: str, editor_token: str, auditor_token: str, figure: Callable[[str, str], None]
) -> None:
    """Fuzzed requests to every operation: 5xx 0, errors off the contract 0, mismatches 0."""
    story, entry = seed(api_url)
    schema = schemathesis.openapi.from_url(f"{api_url}/openapi.json")
    session = requests.Session()
    who = itertools.cycle(
        [
            {"Authorization": f"Bearer {ADMIN_TOKEN}"},
            {"Authorization": f"Bearer {editor_token}"},
            {"Authorization": f"Bearer {auditor_token}"},
            {},
        ]
    )
    statuses: Counter[int] = Counter()
    errors_checked = 0
    shape: list[str] = []
    mismatches: Counter[str] = Counter()
    first: dict[str, str] = {}
    operations = 0

    def send(case: schemathesis.Case, label: str, path: str) -> None:
        nonlocal errors_checked
        if case.query and str(case.query.get("min_version", "x")).isdigit():
            case.query["min_version"] = "0"  # above the head, a read waits 5 s by contract
        response = case.call(base_url=api_url, session=session, headers=next(who), timeout=30)
        statuses[response.status_code] += 1
        if response.status_code >= 400 and case.method.upper() != "HEAD":
            errors_checked += 1
            kind = (response.headers.get("content-type") or [""])[0]
            if path in PAGES:
                why = None if kind.startswith("text/html") else f"a page answered {kind}"
            else:
                why = (
                    off_contract(response.status_code, response.json()) if "json" in kind else kind
                )
            if why:
                shape.append(f"{label} {response.status_code}: {why}: {response.text[:200]}")
        try:
            case.validate_response(response, checks=CHECKS)
        except FailureGroup as found:
            for failure in found.exceptions:
                key = f"{label} {response.status_code} {failure.title}"
                mismatches[key] += 1
                first.setdefault(key, f"{case.as_curl_command()}\n{response.text[:300]}")

    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        names = {p.name for p in operation.path_parameters}
        real = {"story": story, "entry": entry} if "story" in names else None
        targets = (None, real) if real else (None,)
        invalid = list(operation.iter_parameters()) or operation.body
        modes = GenerationMode if invalid else (GenerationMode.POSITIVE,)
        for mode, target in itertools.product(modes, targets):
            strategy = operation.as_strategy(
                generation_mode=mode,
                path_parameters={k: v for k, v in (target or {}).items() if k in names} or None,
            )

            @given(case=strategy)
            @settings(
                max_examples=EXAMPLES,
                phases=[Phase.generate],  # counted, never shrunk: every case is sent once
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def run(case: schemathesis.Case) -> None:
                send(case, case.operation.label, case.operation.path)

            # An operation whose every input is free text has nothing to make invalid.
            with contextlib.suppress(Unsatisfiable):
                run()
    cases = statuses.total()
    fives = sum(n for status, n in statuses.items() if status >= 500)
    figure(
        "API fuzzing",
        f"{cases} generated requests to {operations} operations: 5xx {fives} of {cases}; "
        f"errors off the contract's shape {len(shape)} of {errors_checked}; "
        f"answers the document does not state {mismatches.total()} of {cases} "
        f"(statuses seen {dict(sorted(statuses.items()))})",
    )
    assert fives == 0, statuses
    assert not shape, shape[:5]
    assert not mismatches, [f"{k} (x{n})\n{first[k]}" for k, n in mismatches.most_common(5)]
