"""The write path's shared connection: answers reach their own callers, failures are told."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from services.store.autopipeline import AutoPipeline, Script
from services.store.connection import connect


@pytest.fixture
async def pipe(isolated_url: str) -> AsyncIterator[AutoPipeline]:
    client = connect(isolated_url)
    p = AutoPipeline(client)
    yield p
    await p.close()
    await client.aclose()


async def test_concurrent_callers_each_get_their_own_answer(pipe: AutoPipeline) -> None:
    """500 tasks at once on one connection: each INCR answer goes to the task that sent it."""
    answers = await asyncio.gather(*(pipe.execute("INCR", "counter") for _ in range(500)))
    assert sorted(answers) == list(range(1, 501))
    echoes = await asyncio.gather(*(pipe.execute("ECHO", f"m{i}") for i in range(300)))
    assert echoes == [f"m{i}".encode() for i in range(300)]


async def test_an_error_reaches_only_its_caller(pipe: AutoPipeline) -> None:
    await pipe.execute("SET", "text", "not a number")
    results = await asyncio.gather(
        pipe.execute("INCR", "n"),
        pipe.execute("INCR", "text"),
        pipe.execute("INCR", "n"),
        return_exceptions=True,
    )
    assert results[0] == 1
    assert results[2] == 2
    assert isinstance(results[1], ResponseError)


async def test_uses_the_database_named_in_the_url(pipe: AutoPipeline, isolated_url: str) -> None:
    await pipe.execute("SET", "where", "here")
    client = redis.Redis.from_url(isolated_url)
    assert await client.get("where") == b"here"
    await client.aclose()


async def test_a_script_the_server_forgot_is_loaded_again(pipe: AutoPipeline) -> None:
    script = Script(pipe, "return redis.call('INCRBY', KEYS[1], ARGV[1])")
    assert await script(["total"], [2]) == 2
    await pipe.execute("SCRIPT", "FLUSH")
    assert await script(["total"], [3]) == 5


async def test_a_lost_connection_fails_its_callers_then_reopens(
    pipe: AutoPipeline, isolated_url: str
) -> None:
    """Callers in flight when the server drops the connection hear it; the next call reconnects."""
    own_id = await pipe.execute("CLIENT", "ID")
    blocked = asyncio.ensure_future(pipe.execute("BLPOP", "never", 5))
    await asyncio.sleep(0.05)
    admin = redis.Redis.from_url(isolated_url)
    await admin.client_kill_filter(_id=own_id)
    await admin.aclose()
    with pytest.raises(RedisConnectionError):
        await blocked
    assert await pipe.execute("PING") == b"PONG"
    assert await pipe.execute("CLIENT", "ID") != own_id


async def test_commands_sent_together_get_their_answers_in_order(pipe: AutoPipeline) -> None:
    """Several commands in one write: each answer (or error) in its place, among other callers."""
    await pipe.execute("SET", "text", "not a number")
    together, alone = await asyncio.gather(
        pipe.execute_many([("INCR", "n"), ("INCR", "text"), ("ECHO", "last")]),
        pipe.execute("INCR", "n"),
    )
    assert together[0] in (1, 2)
    assert isinstance(together[1], ResponseError)
    assert together[2] == b"last"
    assert {together[0], alone} == {1, 2}


async def test_a_script_run_many_times_at_once_is_loaded_again_when_forgotten(
    pipe: AutoPipeline,
) -> None:
    """``Script.many`` answers every call in order, after one SCRIPT LOAD if the server forgot."""
    script = Script(pipe, "return redis.call('INCRBY', KEYS[1], ARGV[1])")
    await pipe.execute("SCRIPT", "FLUSH")
    assert await script.many([(["a"], [1]), (["b"], [5]), (["a"], [2])]) == [1, 5, 3]
    with pytest.raises(ResponseError):
        await script.many([(["a"], [1]), (["a"], ["x"])])
    assert await pipe.execute("GET", "a") == b"4"  # the call before the failing one still ran
