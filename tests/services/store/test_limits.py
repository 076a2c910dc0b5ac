"""Write limits on the real server: a burst, then one write per interval, shared by processes."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as redis

from events.errors import RateLimited
from services.store import keys
from services.store.autopipeline import AutoPipeline
from services.store.limits import WriteLimits


def a_token() -> str:
    return uuid.uuid4().hex


async def refused(limits: WriteLimits, token: str, n: int) -> int:
    """How many of ``n`` writes at once were refused."""
    answers = await asyncio.gather(*(limits.take(token) for _ in range(n)), return_exceptions=True)
    assert all(a is None or isinstance(a, RateLimited) for a in answers)
    return sum(isinstance(a, RateLimited) for a in answers)


async def test_a_burst_is_allowed_and_the_next_write_is_refused(client: redis.Redis) -> None:
    """After a quiet spell a token may write ``burst`` times at once; the next is refused with
    whole seconds to wait, at least 1, in ``details.retry_after``."""
    limits, token = WriteLimits(AutoPipeline(client), rate=0.5, burst=5), a_token()
    assert await refused(limits, token, 5) == 0
    with pytest.raises(RateLimited) as caught:
        await limits.take(token)
    assert caught.value.details == {"retry_after": 2}  # one write every 2 s
    assert "0.5 times a second" in caught.value.message


async def test_the_allowance_refills_at_the_rate(client: redis.Redis) -> None:
    limits, token = WriteLimits(AutoPipeline(client), rate=20, burst=2), a_token()
    assert await refused(limits, token, 3) == 1
    await asyncio.sleep(0.12)  # two intervals of 50 ms: two writes are free again
    assert await refused(limits, token, 3) == 1


async def test_processes_on_one_store_share_one_allowance(client: redis.Redis) -> None:
    """Two API processes (two connections, two ``WriteLimits``) take from the same allowance."""
    token = a_token()
    one = WriteLimits(AutoPipeline(client), rate=1, burst=4)
    other = WriteLimits(AutoPipeline(client), rate=1, burst=4)
    assert await refused(one, token, 3) == 0
    assert await refused(other, token, 3) == 2


async def test_tokens_have_their_own_allowances(client: redis.Redis) -> None:
    limits = WriteLimits(AutoPipeline(client), rate=1, burst=2)
    first, second = a_token(), a_token()
    assert await refused(limits, first, 3) == 1
    assert await refused(limits, second, 2) == 0


async def test_rate_zero_asks_the_store_nothing(client: redis.Redis) -> None:
    limits, token = WriteLimits(AutoPipeline(client), rate=0, burst=1), a_token()
    assert await refused(limits, token, 50) == 0
    assert await client.exists(keys.write_bucket(token)) == 0


async def test_a_bucket_expires_once_full_again(client: redis.Redis) -> None:
    """A bucket is kept only as long as it matters: until the allowance would be full again."""
    limits, token = WriteLimits(AutoPipeline(client), rate=10, burst=3), a_token()
    await limits.take(token)
    ttl = await client.pttl(keys.write_bucket(token))
    assert 0 < ttl <= 101


async def test_a_bucket_never_reaches_the_append_only_file(client: redis.Redis) -> None:
    """Taking from allowances writes nothing to the append-only file (no fsync on the write
    path for it, and a restart gives every token its whole burst again)."""
    info = await client.info("persistence")
    if not info.get("aof_enabled"):
        pytest.skip("this server runs without an append-only file")
    limits = WriteLimits(AutoPipeline(client), rate=10, burst=3)
    for _ in range(3):  # the shared server's own background writes may land in between
        before = (await client.info("persistence"))["aof_current_size"]
        for _ in range(20):
            await limits.take(a_token())
        if (await client.info("persistence"))["aof_current_size"] == before:
            return
    pytest.fail("the append-only file grew while only allowances were taken")
