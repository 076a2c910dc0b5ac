"""A real browser on the reader page: Debian's headless Chromium, driven by Playwright.

These tests never download a browser. They run wherever a Chromium is found (``DATELINE_CHROMIUM``,
then ``chromium`` or ``chromium-browser`` on PATH, then ``/usr/bin/chromium``); ``.ci/run``
installs Debian's, so CI always runs them. Without one they are skipped with the reason, and the
reason is written to ``test-artifacts/browser-skipped.txt`` so ``make test`` can say so plainly;
with ``DATELINE_REQUIRE_BROWSER=1`` a missing browser is a failure instead. A browser that is found
but fails to start is always a failure.

Third-party hosts never see a request: the page fixture answers them itself (an SVG for images,
a stand-in page for players) and records them, so a test can check that a click-to-load embed
made no request before the click.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Browser, Page, Request, Route, async_playwright

from tests.conftest import ROOT, free_port, wait_ready

ARTIFACTS = ROOT / "test-artifacts"
SKIPPED = ARTIFACTS / "browser-skipped.txt"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PICTURE = """<svg xmlns="http://www.w3.org/2000/svg" width="1200" height="675" viewBox="0 0 1200 675">
<defs><linearGradient id="sky" x1="0" y1="0" x2="0" y2="1">
<stop offset="0" stop-color="#4a5d73"/><stop offset="0.55" stop-color="#90a4b8"/>
<stop offset="0.56" stop-color="#2f4b5e"/><stop offset="1" stop-color="#17303f"/></linearGradient></defs>
<rect width="1200" height="675" fill="url(#sky)"/>
<path d="M0 420 Q150 330 300 410 T600 400 T900 380 T1200 400 V675 H0Z" fill="#dfe8ee" opacity="0.55"/>
<rect x="0" y="470" width="1200" height="40" fill="#3b3f45"/></svg>"""
PLAYER = "<!doctype html><body style='margin:0;background:#000;color:#fff;font:20px sans-serif;display:grid;place-items:center;height:100vh'>player"


def find_chromium() -> str | None:
    """A Chromium executable on this machine, or None."""
    given = os.environ.get("DATELINE_CHROMIUM")
    if given:
        return given if Path(given).exists() else None
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


@pytest.fixture(scope="session")
def chromium() -> str:
    """The browser's path; without one, a skip that says why (and leaves a note for make)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = find_chromium()
    if path is None:
        reason = (
            "browser tests not run: no Chromium found (set DATELINE_CHROMIUM, or install "
            "Debian's chromium package: apt-get install chromium)"
        )
        if os.environ.get("DATELINE_REQUIRE_BROWSER") == "1":
            pytest.fail(reason)
        SKIPPED.write_text(reason + "\n")
        pytest.skip(reason)
    SKIPPED.unlink(missing_ok=True)
    return path


@pytest.fixture(scope="session")
async def browser(chromium: str) -> AsyncIterator[Browser]:
    """One headless Chromium for the session (never a downloaded one)."""
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


@dataclass
class Watch:
    """What a page did that a test may check: its errors and its third-party requests."""

    errors: list[str] = field(default_factory=list)
    policy: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)

    def on_console(self, kind: str, text: str) -> None:
        if "Content Security Policy" in text:
            self.policy.append(text)

    def third_party(self, host: str) -> list[str]:
        return [u for u in self.outside if urlsplit(u).hostname == host]


@dataclass
class Reader:
    """A browser tab and what it did."""

    page: Page
    watch: Watch


async def _outside(watch: Watch, route: Route, request: Request) -> None:
    """Answer every third-party request here; the test machine needs no network."""
    host = urlsplit(request.url).hostname or ""
    if host in ("127.0.0.1", "localhost"):
        await route.continue_()
        return
    watch.outside.append(request.url)
    if request.resource_type == "image":
        await route.fulfill(status=200, content_type="image/svg+xml", body=PICTURE)
    elif request.resource_type == "document":
        await route.fulfill(status=200, content_type="text/html", body=PLAYER)
    else:
        await route.abort()


@pytest.fixture
async def reader(browser: Browser) -> AsyncIterator[Reader]:
    """A fresh tab (1280 x 900); it must end with no script error and no policy violation."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    watch = Watch()
    page = await context.new_page()
    page.on("console", lambda m: watch.on_console(m.type, m.text))
    page.on("pageerror", lambda e: watch.errors.append(str(e)))
    await context.route("**/*", lambda route, request: _outside(watch, route, request))
    try:
        yield Reader(page, watch)
    finally:
        await context.close()
    assert watch.errors == [], f"script errors on the page: {watch.errors}"
    assert watch.policy == [], f"Content-Security-Policy violations: {watch.policy}"


# -- a site behind a line we can cut ------------------------------------------------------------


class Relay:
    """A TCP relay between browsers and a gateway, which a test can sever like a dead network."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.port = 0
        self.cut = False
        self.links: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._link, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        except OSError:
            writer.transport.abort()
            return
        self.links |= {writer, up_writer}
        try:
            await asyncio.gather(
                self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
            )
        finally:
            self.links -= {writer, up_writer}
            for w in (writer, up_writer):
                w.transport.abort()

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
        sink.transport.abort()

    def sever(self) -> None:
        """Drop every connection at once (a reset, no close frame) and refuse new ones."""
        self.cut = True
        for writer in list(self.links):
            writer.transport.abort()

    def restore(self) -> None:
        self.cut = False

    async def stop(self) -> None:
        self.sever()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@dataclass(frozen=True)
class Site:
    """Reader pages from an API process whose pages reach the gateway through ``relay``."""

    http: str
    relay: Relay


def _dateline(*args: str, **env: str) -> subprocess.Popen[str]:
    environment = {**os.environ, **env}
    environment.pop("DATELINE_REDIS_URL", None)
    return subprocess.Popen(
        [sys.executable, "-m", "services", *args],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def _wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


@pytest.fixture(scope="module")
async def site(redis_url: str, server: object) -> AsyncIterator[Site]:
    """``dateline gateway`` and ``dateline api`` on the session's store (whose projector
    projects), the API's reader pages pointing browsers at a relay to that gateway."""
    http_port, ws_port = free_port(), free_port()
    relay = Relay(ws_port)
    await relay.start()
    gateway = _dateline(
        "gateway", "--redis", redis_url, "--ws-port", str(ws_port), "--http-port", str(http_port)
    )
    api = _dateline(
        "api",
        "--redis",
        redis_url,
        "--http-port",
        str(http_port),
        DATELINE_WS_URL=f"ws://127.0.0.1:{relay.port}/ws",
    )
    base = f"http://127.0.0.1:{http_port}"
    try:
        await asyncio.to_thread(_wait_port, ws_port)
        await asyncio.to_thread(wait_ready, api, base)
        yield Site(base, relay)
    finally:
        for proc in (api, gateway):
            proc.terminate()
            await asyncio.to_thread(proc.wait, 10)
        await relay.stop()
