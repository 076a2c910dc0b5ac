"""API tokens on the real server: created once, resolved to role and actor, revoked at once."""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio as redis

from events.errors import TokenNameTaken
from services.store import keys
from services.store.tokens import Tokens, token_hash


def fresh_name() -> str:
    return f"tk-{uuid.uuid4().hex[:12]}"


async def test_a_created_token_resolves_to_its_role_and_actor(client: redis.Redis) -> None:
    """The token handed back once resolves to the role it was made for, acting under its name."""
    name = fresh_name()
    token, made = await Tokens(client).create("editor", name)
    found = await Tokens(client).resolve(token)
    assert found == made
    assert found is not None
    assert (found.role, found.actor) == ("editor", f"editor:{name}")


async def test_a_taken_name_is_refused(client: redis.Redis) -> None:
    """A second token under a name already in use is TokenNameTaken, and the first still works."""
    tokens, name = Tokens(client), fresh_name()
    first, _ = await tokens.create("auditor", name)
    with pytest.raises(TokenNameTaken):
        await tokens.create("editor", name)
    found = await tokens.resolve(first)
    assert found is not None
    assert found.role == "auditor"


async def test_a_revoked_token_is_unknown_at_once(client: redis.Redis) -> None:
    """Right after revocation the token resolves to None, even in the process that had cached it."""
    tokens, name = Tokens(client), fresh_name()
    token, _ = await tokens.create("editor", name)
    assert await tokens.resolve(token) is not None
    await tokens.revoke(name)
    assert await tokens.resolve(token) is None
    assert await Tokens(client).resolve(token) is None


async def test_only_the_hash_of_a_token_is_stored(client: redis.Redis) -> None:
    """The store holds the token's SHA-256 under its name, never the token itself."""
    name = fresh_name()
    token, _ = await Tokens(client).create("admin", name)
    stored = await client.hkeys(keys.TOKENS)
    assert token_hash(token).encode() in stored
    assert token.encode() not in stored
    assert await client.hget(keys.TOKEN_NAMES, name) == token_hash(token).encode()
    assert all(token.encode() not in v for v in await client.hvals(keys.TOKENS))


async def test_an_unknown_token_resolves_to_none(client: redis.Redis) -> None:
    """A bearer token nobody created is no one."""
    assert await Tokens(client).resolve(f"dl_{uuid.uuid4().hex}") is None
