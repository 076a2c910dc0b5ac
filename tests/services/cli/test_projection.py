"""``dateline projection parked`` and ``projection retry``, ``/healthz`` and ``/metrics`` on a
store where a poison event has parked a story (CONTRACT second edition; issue 11)."""

from __future__ import annotations

import json

import httpx
import redis.asyncio as redis

from events.decide import parse_open
from services.projector.consumers import Consumers
from services.projector.feeds import ensure_groups
from services.projector.fold import Projector
from services.store import keys
from services.store.record import Store
from tests.conftest import ADMIN_TOKEN, free_port, start_api, wait_ready
from tests.services.cli.dateline import dateline
from tests.services.http.test_limits import a_token
from tests.services.projector.test_parked import wait_parked, write_around_the_api


async def test_a_parked_story_is_reported_everywhere_and_retried_by_the_desk(
    isolated_url: str,
) -> None:
    client = redis.Redis.from_url(isolated_url)
    store = Store(client)
    await ensure_groups(client)
    await store.append("stuck", parse_open({"story": "stuck", "title": "Stuck"}), actor="e:a")
    version = await write_around_the_api(client, store, "stuck", "entry.exploded", {})
    consumers = Consumers(
        isolated_url, lambda: Projector(client, store), "cli-test", claim_idle_ms=200
    )
    await consumers.start()
    try:
        await wait_parked(client, "stuck")
    finally:
        await consumers.stop()

    port = free_port()
    proc = start_api(isolated_url, port)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, base)
        http = httpx.AsyncClient(base_url=base)
        health = (await http.get("/healthz")).json()
        assert health == {"ok": True, "store": "reachable", "projection": "parked", "parked": 1}
        assert "dateline_projector_parked 1.0" in (await http.get("/metrics")).text

        listed = dateline(base, ADMIN_TOKEN, "projection", "parked")
        assert listed.exit_code == 1
        assert f"stuck parked at version {version} (entry.exploded)" in listed.stdout
        assert "no fold for event type" in listed.stdout
        as_json = dateline(base, ADMIN_TOKEN, "projection", "parked", "--json")
        assert json.loads(as_json.stdout)["parked"][0]["story"] == "stuck"

        editor = a_token(base)
        refused = dateline(base, editor, "projection", "retry", "stuck")
        assert refused.exit_code == 2
        assert "forbidden" in refused.stderr
        unknown = dateline(base, ADMIN_TOKEN, "projection", "retry", "not-parked")
        assert unknown.exit_code == 2
        assert "unknown_story" in unknown.stderr

        feed_before = await client.xlen(keys.feed_of("stuck"))
        retried = dateline(base, ADMIN_TOKEN, "projection", "retry", "stuck")
        assert retried.exit_code == 0, retried.stderr
        assert f"unparked stuck (parked at version {version})" in retried.stdout
        assert await client.xlen(keys.feed_of("stuck")) == feed_before + 1  # the doorbell
        assert dateline(base, ADMIN_TOKEN, "projection", "parked").exit_code == 0
        assert (await http.get("/healthz")).json()["parked"] == 0
        await http.aclose()
    finally:
        proc.terminate()
        proc.wait(10)
        await client.aclose()
