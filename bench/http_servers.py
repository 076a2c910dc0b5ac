"""The baselines of ``bench.http_append`` (the same append as a bare Starlette or FastAPI handler)
and of ``bench.reads`` (saved answers served by a bare ASGI app, no framework).

Each parses the JSON body, checks the bearer token, makes one version-checked EVALSHA XADD
(``bench.common.BARE_SCRIPT``, versions kept in memory, a retry on a conflict) and answers 201 with
the stored JSON. They are served exactly as ``services.run.serve`` serves the API (uvicorn.Server with
the same Config, awaited in ``services.run.serve.run_loop``), so the event loop and HTTP parser are the same:

    python -m bench.http_servers starlette|fastapi PORT     (BENCH_REDIS_URL, BENCH_TOKEN)
    python -m bench.http_servers static PORT                (BENCH_STATIC: the answers, JSON)

``static`` is the floor of public reads: the answers ``bench.reads`` saved from ``dateline serve``
(their exact bodies and headers), served by a plain ASGI callable on uvicorn with httptools and
uvloop, chosen by path and ``Accept-Encoding``, and 304 when ``If-None-Match`` names the ETag.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
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


Message = MutableMapping[str, Any]
ASGI = Callable[
    [Message, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Awaitable[None],
]


def static_app(spec_path: str) -> ASGI:
    """The floor of public reads: saved answers as ready ASGI messages, no framework.

    ``spec_path`` is a JSON map from a request path to ``{"etag": str, "not_modified": headers,
    "forms": {"br" | "identity": {"headers": headers, "body": file}}}`` (headers as ``[name,
    value]`` pairs, without ``Date``, ``Server`` and ``Content-Length``: uvicorn adds the first two
    as it does for ``dateline serve``, the length is the file's). The rule: ``If-None-Match``
    naming the ETag (a list, weak or strong) gets the saved 304; otherwise ``br`` anywhere in
    ``Accept-Encoding`` gets the brotli form, anything else the identity form; an unknown path
    404. Every message is built once, at start.
    """
    spec = orjson.loads(Path(spec_path).read_bytes())

    def encoded(pairs: list[list[str]]) -> list[tuple[bytes, bytes]]:
        return [(name.lower().encode(), value.encode()) for name, value in pairs]

    def start(status: int, headers: list[tuple[bytes, bytes]]) -> Message:
        return {"type": "http.response.start", "status": status, "headers": headers}

    answers: dict[str, tuple[bytes, Message, dict[str, tuple[Message, Message]]]] = {}
    for path, entry in spec.items():
        forms: dict[str, tuple[Message, Message]] = {}
        for name, form in entry["forms"].items():
            body = Path(form["body"]).read_bytes()
            headers = [*encoded(form["headers"]), (b"content-length", str(len(body)).encode())]
            forms[name] = (start(200, headers), {"type": "http.response.body", "body": body})
        not_modified = start(304, encoded(entry["not_modified"]))
        answers[path] = (str(entry["etag"]).encode(), not_modified, forms)
    empty: Message = {"type": "http.response.body", "body": b""}
    missing = start(404, [(b"content-length", b"0")])
    healthy = start(200, [(b"content-type", JSON.encode()), (b"content-length", b"11")])

    async def app(
        scope: Message,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":  # lifespan: nothing to start
            message = await receive()
            while message["type"] != "lifespan.shutdown":
                await send({"type": message["type"] + ".complete"})
                message = await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        found = answers.get(scope["path"])
        if found is None:
            if scope["path"] == "/healthz":
                await send(healthy)
                await send({"type": "http.response.body", "body": b'{"ok":true}'})
                return
            await send(missing)
            await send(empty)
            return
        etag, not_modified, forms = found
        accept = b""
        for name, value in scope["headers"]:
            if name == b"if-none-match":
                if etag in {tag.strip().removeprefix(b"W/") for tag in value.split(b",")}:
                    await send(not_modified)
                    await send(empty)
                    return
            elif name == b"accept-encoding":
                accept = value
        head, body = forms["br" if b"br" in accept and "br" in forms else "identity"]
        await send(head)
        await send(body)

    return app


def serve_static(spec_path: str, port: int) -> None:
    """``static_app`` on uvicorn with httptools and uvloop named, otherwise configured as
    ``serve`` configures the others (``services.run.serve``'s Config, one worker)."""
    import uvicorn

    from services.run.serve import run_loop

    config = uvicorn.Config(
        static_app(spec_path),
        host="127.0.0.1",
        port=port,
        http="httptools",
        loop="uvloop",
        log_level="warning",
        access_log=False,
        lifespan="on",
    )
    run_loop(uvicorn.Server(config).serve())


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
    if kind == "static":
        serve_static(os.environ["BENCH_STATIC"], port)
        sys.exit(0)
    build = {"starlette": starlette_app, "fastapi": fastapi_app}[kind]
    serve(build(os.environ["BENCH_REDIS_URL"], os.environ["BENCH_TOKEN"]), port)
