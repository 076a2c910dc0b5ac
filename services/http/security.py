"""The security headers every HTTP answer carries, made once per process.

Rules (CONTRACT second edition, issue 11 "Security basics"; docs/guarantees.md "Security"):
- every answer the API's server writes carries ``X-Content-Type-Options: nosniff``,
  ``X-Frame-Options: SAMEORIGIN`` and ``Referrer-Policy: strict-origin-when-cross-origin``:
  JSON, Prometheus text, the reader's pages and static files, every refusal (401 to 503, a
  404 for no route, a 405, a 500 for a bug, uvicorn's own 400 for a request it cannot parse),
  ``HEAD`` answers and 304s, the fast paths ``front`` answers without FastAPI included;
- they are uvicorn's *default headers* (``serve._server`` installs ``headers()``): encoded once
  when the server starts and prefixed to every response head it writes, so no route can forget
  them and no request pays to add them;
- ``X-Frame-Options: SAMEORIGIN`` says for every answer what a page's Content-Security-Policy
  says with ``frame-ancestors 'self'`` (``services/reader/policy.py``): framed by this origin
  only. A browser that knows ``frame-ancestors`` follows the page's policy and ignores the
  older header (CSP Level 2, 7.7), so the two never disagree. A Content-Security-Policy is
  not among the defaults: a second policy would be enforced beside the page's own, and each
  page sends its own;
- ``Strict-Transport-Security: max-age=N`` is sent when ``DATELINE_HSTS_SECONDS`` is N > 0,
  on every answer. Set it when TLS ends at your balancer (docs/operations.md): the header is
  what makes a browser refuse plain http to the host next time. Over plain http a browser
  ignores it (RFC 6797 8.1), so sending it on every answer is the same as sending it only on
  those that came over https, without trusting a proxy's ``X-Forwarded-Proto`` per request.
"""

from __future__ import annotations

from services.settings import Settings

ALWAYS: tuple[tuple[str, str], ...] = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "SAMEORIGIN"),
    ("Referrer-Policy", "strict-origin-when-cross-origin"),
)
"""Sent on every answer, whatever the settings."""
HSTS = "Strict-Transport-Security"


def headers(settings: Settings) -> list[tuple[str, str]]:
    """Every answer's security headers under ``settings`` (uvicorn's ``headers=``)."""
    sent = list(ALWAYS)
    if settings.hsts_seconds > 0:
        sent.append((HSTS, f"max-age={settings.hsts_seconds}"))
    return sent
