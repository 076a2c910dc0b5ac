"""Running the API: tokens (admin), ``GET /healthz`` and ``GET /metrics`` (CONTRACT "HTTP API").

A token is shown once, in the answer that creates it; a revoked token is refused at once, on
every server. ``/healthz`` is 200 while the store answers and the contract's 503
``store_unavailable`` when it does not, or when it no longer holds the record this server writes
to (emptied or replaced: ``details.store`` is ``"lost"``, ``services.store.identity``); ``/metrics`` is Prometheus text, and reads the
projectors' lag best effort (0 while the store is unreachable).
"""

from __future__ import annotations

import contextlib

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from events.errors import DatelineError, InvalidRequest
from events.stamp import ROLES
from services.http import openapi
from services.http.auth import principal, writer
from services.http.container import Services
from services.http.parsing import json_body, known_story
from services.http.responses import json_response
from services.store import keys, parking
from services.store.connection import reachable

WRITE_ERRORS = (400, 401, 403, 409, 413, 415, 422, 429, 503)
"""What ``POST /tokens`` may be refused with (CONTRACT "HTTP API", "Errors")."""


def router(services: Services) -> APIRouter:
    """The token and operations routes."""
    tokens = services.tokens
    routes = APIRouter()

    @routes.post(
        "/tokens",
        status_code=201,
        tags=["admin"],
        openapi_extra=openapi.body(openapi.TokenRequest) | openapi.access("admin"),
        responses=openapi.answers(
            201, openapi.TokenCreated, *WRITE_ERRORS, description="the token"
        ),
    )
    async def create_token(request: Request) -> Response:
        """Create a token ``{role, name?}`` (admin); the token is shown only in this answer."""
        await writer(tokens, services.limits, request, "admin")
        body = await json_body(request, services.settings.max_body)
        role, name = body.get("role"), body.get("name")
        if not isinstance(role, str):
            raise InvalidRequest(f"role must be one of {', '.join(ROLES)}", {"field": "role"})
        if name is not None and not isinstance(name, str):
            raise InvalidRequest("name must be a string", {"field": "name"})
        token, who = await tokens.create(role, name)
        return json_response({"token": token, "role": who.role, "name": who.name}, 201)

    @routes.delete(
        "/tokens/{name}",
        status_code=204,
        tags=["admin"],
        openapi_extra=openapi.access("admin"),
        responses=openapi.answers(204, None, 401, 403, 404, 429, 503, description="revoked"),
    )
    async def delete_token(name: str, request: Request) -> Response:
        """Revoke a token at once, on every server (admin)."""
        await writer(tokens, services.limits, request, "admin")
        await tokens.revoke(name)
        return Response(status_code=204)

    @routes.api_route(
        "/healthz",
        methods=["GET", "HEAD"],
        tags=["ops"],
        openapi_extra=openapi.access("public"),
        responses=openapi.answers(200, openapi.Health, 503),
    )
    async def healthz() -> Response:
        """Liveness, with the store's reachability (503 when it cannot be reached) and how many
        stories' projections are parked behind an event they cannot fold."""
        await services.store.healthy()
        with reachable():
            stuck = await parking.count(services.client)
        return json_response(
            {
                "ok": True,
                "store": "reachable",
                "projection": "parked" if stuck else "ok",
                "parked": stuck,
            }
        )

    @routes.api_route(
        "/projection/parked",
        methods=["GET", "HEAD"],
        tags=["ops"],
        openapi_extra=openapi.access("auditor"),
        responses=openapi.answers(200, openapi.Parked, 401, 403, 503),
    )
    async def list_parked(request: Request) -> Response:
        """Every story whose projection is parked, with the event and error that parked it
        (auditor or admin)."""
        await principal(tokens, request, "auditor")
        with reachable():
            return json_response({"parked": await parking.parked(services.client)})

    @routes.post(
        "/projection/parked/{story}/retry",
        tags=["ops"],
        openapi_extra=openapi.access("admin"),
        responses=openapi.answers(200, None, 401, 403, 404, 429, 503, description="unparked"),
    )
    async def retry_parked(story: str, request: Request) -> Response:
        """Unpark a story and have it folded again from where it stopped (admin)."""
        await writer(tokens, services.limits, request, "admin")
        with reachable():
            return json_response(await parking.retry(services.client, known_story(story)))

    @routes.api_route(
        "/metrics",
        methods=["GET", "HEAD"],
        tags=["ops"],
        response_class=Response,
        openapi_extra=openapi.access("public"),
        responses=openapi.answers(200, None, media=CONTENT_TYPE_LATEST, description="Prometheus"),
    )
    async def metrics() -> Response:
        """Prometheus text: appends, refusals by code, projector lag and pending events."""
        lag = pending = 0
        with contextlib.suppress(DatelineError), reachable():
            async with services.client.pipeline(transaction=False) as pipe:
                for p in range(keys.partitions()):
                    pipe.xinfo_groups(keys.feed(p))
                for groups in await pipe.execute(raise_on_error=False):
                    for g in groups if isinstance(groups, list) else []:
                        if g["name"] == keys.GROUP.encode():
                            lag += int(g.get("lag") or 0)
                            pending += int(g.get("pending") or 0)
        with contextlib.suppress(DatelineError), reachable():
            services.parked.set(await parking.count(services.client))
        services.lag.set(lag)
        services.pending.set(pending)
        services.bypassed.set(services.audit.bypassed)
        return Response(generate_latest(services.registry), media_type=CONTENT_TYPE_LATEST)

    return routes
