"""The Lua scripts on the real server: a call out of step with a script's slots is refused by
name, and nothing is written."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as redis
from redis.exceptions import ResponseError

from services.store import keys, scripts
from services.store.autopipeline import Script
from services.store.keys import GROUP
from services.store.record import Store


@pytest.fixture
async def store(isolated_url: str) -> AsyncIterator[Store]:
    """A store on a database of its own: no projector of the session server reads its feeds."""
    own = Store.from_url(isolated_url)
    yield own
    await own.close()


@pytest.fixture
def client(store: Store) -> redis.Redis:
    return store.client


def append_call(story: str, store: str = "a-store") -> tuple[scripts.AppendKeys, list[scripts.Arg]]:
    """A well-formed first append of ``story`` (its head still empty) to the store ``store``."""
    return scripts.append(
        scripts.AppendKeys.of(story),
        expected_version=0,
        expected_hash="0" * 64,
        version=1,
        new_hash="a" * 64,
        envelope=b'{"version":1}',
        fingerprint="",
        ttl=60,
        story=story,
        store=store,
    )


def project_call(story: str) -> tuple[scripts.ProjectKeys, list[scripts.Arg]]:
    """A well-formed projection of ``story``'s version 1, with one change and one entry."""
    return scripts.project(
        scripts.project_keys(story),
        from_version=0,
        to_version=1,
        meta_json=b'{"version":1}',
        pinned="",
        pinned_json="",
        key_events=b"[]",
        activity=1,
        story=story,
        changes_kept=10,
        partition_changes_kept=10,
        group=GROUP,
        changes=[1, b'{"type":"change"}'],
        entries=["e1", b'{"entry_id":"e1"}'],
        published=[1, "e1"],
        index=[],
        checkpoints=[],
        acks=[],
    )


async def footprint(client: redis.Redis, story: str) -> list[Any]:
    """Everything a script call for ``story`` could write, as a comparable list."""
    p = keys.partition(story)
    return [
        await client.exists(keys.events(story), keys.head(story), keys.meta(story)),
        await client.exists(keys.entries(story), keys.order(story), keys.changes(story)),
        await client.exists(keys.TOKEN_NAMES, keys.TOKENS),
        await client.xlen(keys.feed(p)) if await client.exists(keys.feed(p)) else 0,
        await client.zscore(keys.stories(p), story),
    ]


@pytest.mark.parametrize(
    ("case", "shape"),
    [
        ("a key short", lambda k, a: (k[:4], a)),
        ("an argument short", lambda k, a: (k, a[:8])),
        ("an argument too many", lambda k, a: (k, [*a, "x"])),
    ],
)
async def test_append_with_a_wrong_arity_is_refused_naming_its_slots(
    store: Store, client: redis.Redis, story_id: str, case: str, shape: Any
) -> None:
    """``append.lua`` answers which keys and arguments it takes, and writes nothing."""
    before = await footprint(client, story_id)
    names, argv = shape(*append_call(story_id))
    with pytest.raises(ResponseError, match=r"append\.lua: expected 5 keys .* got") as refused:
        await Script(store.pipe, scripts.APPEND)(names, argv)
    assert "expected_version, expected_hash, version, new_hash, envelope" in str(refused.value)
    assert await footprint(client, story_id) == before, case


@pytest.mark.parametrize(
    ("case", "shape", "says"),
    [
        ("a key short", lambda k, a: (k[:8], a), "got 8 keys"),
        ("no sections", lambda k, a: (k, a[:11]), "no count for changes at argument 12 of 11"),
        ("an ack too many", lambda k, a: (k, [*a, b"1-0"]), "add up to 22 arguments, got 23"),
        ("a change short", lambda k, a: (k, [*a[:12], *a[14:]]), "no count for"),
        ("a count too big", lambda k, a: (k, [*a[:11], 5, *a[12:]]), "no count for entries"),
        (
            "a count too small",
            lambda k, a: (k, [*a[:11], 0, *a[12:]]),
            "add up to 21 arguments, got 22",
        ),
    ],
)
async def test_project_with_counts_that_do_not_add_up_is_refused(
    store: Store, client: redis.Redis, story_id: str, case: str, shape: Any, says: str
) -> None:
    """``project.lua`` checks its keys and that its counted sections fill ARGV exactly, before
    it reads or writes anything."""
    before = await footprint(client, story_id)
    names, argv = shape(*project_call(story_id))
    with pytest.raises(ResponseError, match=r"project\.lua: expected 9 keys") as refused:
        await Script(store.pipe, scripts.PROJECT)(names, argv)
    assert says in str(refused.value), case
    assert await footprint(client, story_id) == before, case


async def test_the_builders_calls_are_taken_as_they_are(
    store: Store, client: redis.Redis, story_id: str
) -> None:
    """The builders' own calls fit the scripts: the append lands, then its projection."""
    mark = await store.identify()
    assert (await Script(store.pipe, scripts.APPEND)(*append_call(story_id, mark)))[0] == b"ok"
    assert await Script(store.pipe, scripts.PROJECT)(*project_call(story_id)) == -1
    assert await client.hget(keys.meta(story_id), "version") == b"1"
    assert await client.hget(keys.entries(story_id), "e1") == b'{"entry_id":"e1"}'


async def test_create_token_with_a_wrong_arity_is_refused(
    store: Store, client: redis.Redis
) -> None:
    """``create_token.lua`` names its slots when called out of step, and creates nothing."""
    names, args = scripts.create_token(
        names=keys.TOKEN_NAMES, tokens=keys.TOKENS, name="arity", digest="d" * 64, record=b"{}"
    )
    with pytest.raises(ResponseError, match=r"create_token\.lua: expected 2 keys .* got 2 keys"):
        await Script(store.pipe, scripts.CREATE_TOKEN)(names, args[:2])
    assert await client.hget(keys.TOKEN_NAMES, "arity") is None
    assert await client.hget(keys.TOKENS, "d" * 64) is None


async def test_read_page_with_a_wrong_arity_is_refused(store: Store, story_id: str) -> None:
    """``read_page.lua`` names its slots when called out of step; of a story that does not
    exist it answers ``{false}`` (the read model's UnknownStory)."""
    names, args = scripts.read_page(story_id, high="+inf", count=51)
    with pytest.raises(ResponseError, match=r"read_page\.lua: expected 3 keys .* got 3 keys"):
        await Script(store.pipe, scripts.READ_PAGE)(names, args[:1])
    assert await Script(store.pipe, scripts.READ_PAGE)(names, args) == [None]


async def test_an_append_sent_again_after_it_ran_is_answered_dup_and_written_once(
    store: Store, client: redis.Redis, story_id: str
) -> None:
    """A cluster client sends a command again when its reply was lost: the second run of the
    same call finds its own envelope at its version and answers ``dup`` with it, writing
    nothing; another envelope at that version is still a conflict."""
    mark = await store.identify()
    call = append_call(story_id, mark)
    append = Script(store.pipe, scripts.APPEND)
    assert (await append(*call))[0] == b"ok"
    assert await append(*call) == [b"dup", b'{"version":1}']
    assert await client.xlen(keys.events(story_id)) == 1
    assert await client.xlen(keys.feed_of(story_id)) == 1
    keys_, args = call
    other = [*args]
    other[4] = b'{"version":1,"other":true}'
    assert await append(keys_, other) == [b"conflict", b"1"]
    assert await client.xlen(keys.events(story_id)) == 1
