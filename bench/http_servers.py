"""The baselines of ``bench.http_append``: the same append as a bare Starlette or FastAPI handler.

Each parses the JSON body, checks the bearer token, makes one version-checked EVALSHA XADD
(``bench.common.BARE_SCRIPT``, versions kept in memory, a retry on a conflict) and answers 201 with
the stored JSON. They are served exactly as ``services.run.serve`` serves the API (uvicorn.Server with
the same Config, awaited in ``services.run.serve.run_loop``), so the event loop and HTTP parser are the same:

    python -m bench.http_servers starlette|fastapi PORT     (BENCH_REDIS_URL, BENCH_TOKEN)
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

import orjson
import redis.asyncio as redis
from fastapi import FastAPI, Header, HTTPException
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.common import BARE_SCRIPT
from services.store import keys

JSON = "application/json"


def starlette_app(url: str, token: str) -> Starlette:
    """The 20-line handler: orjson in, one script call, orjson bytes out."""
    client = redis.Redis.from_url(url)
    append = client.register_script(BARE_SCRIPT)
    auth, versions = f"Bearer {token}", dict[str, int]()

    async def post_event(request: Request) -> Response:
        if request.headers.get("authorization") != auth:
            return Response(b'{"error":{"code":"unauthorized"}}', 401, media_type=JSON)
        story = request.path_params["story"]
        body = orjson.loads(await request.body())
        version = versions.get(story, 0)
        while True:
            record = orjson.dumps(
                {"story": story, "version": version + 1, "type": body["type"], "data": body["data"]}
            )
            status, value = await append(
                keys=[keys.events(story), keys.head(story)],
                args=[version, version + 1, record, story],
            )
            if status == b"ok":
                versions[story] = version + 1
                return Response(record, 201, media_type=JSON)
            version = int(value)

    async def healthz(request: Request) -> Response:
        return Response(b'{"ok":true}', media_type=JSON)

    return Starlette(
        routes=[
            Route("/stories/{story}/events", post_event, methods=["POST"]),
            Route("/healthz", healthz),
        ]
    )


class EventIn(BaseModel):
    type: str
    data: dict[str, Any]
    expected_version: int | None = None


class EventOut(BaseModel):
    story: str
    version: int
    type: str
    data: dict[str, Any]


def fastapi_app(url: str, token: str) -> FastAPI:
    """A default FastAPI handler: pydantic models in and out, FastAPI's own serialization."""
    client = redis.Redis.from_url(url)
    append = client.register_script(BARE_SCRIPT)
    auth, versions = f"Bearer {token}", dict[str, int]()
    app = FastAPI()

    @app.post("/stories/{story}/events", status_code=201)
    async def post_event(
        story: str, event: EventIn, authorization: Annotated[str | None, Header()] = None
    ) -> EventOut:
        if authorization != auth:
            raise HTTPException(401, "unauthorized")
        version = versions.get(story, 0)
        while True:
            out = EventOut(story=story, version=version + 1, type=event.type, data=event.data)
            status, value = await append(
                keys=[keys.events(story), keys.head(story)],
                args=[version, version + 1, out.model_dump_json(), story],
            )
            if status == b"ok":
                versions[story] = version + 1
                return out
            version = int(value)

    @app.get("/healthz")
    async def healthz() -> dict[str, bool]:
        return {"ok": True}

    return app


def serve(app: Any, port: int) -> None:
    """As ``services.run.serve`` runs the API: same Config, ``Server.serve()`` on the same event loop
    (``services.run.serve.run_loop``: uvloop where installed) and the same HTTP parser (httptools)."""
    import uvicorn

    from services.run.serve import run_loop

    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
    )
    run_loop(uvicorn.Server(config).serve())


if __name__ == "__main__":
    kind, port = sys.argv[1], int(sys.argv[2])
    build = {"starlette": starlette_app, "fastapi": fastapi_app}[kind]
    serve(build(os.environ["BENCH_REDIS_URL"], os.environ["BENCH_TOKEN"]), port)
