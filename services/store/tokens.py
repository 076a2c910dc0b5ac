"""API tokens: created by an admin, stored only as SHA-256 hashes, revoked at once everywhere.

A token is shown once, when created. A request's token is hashed and looked up; the answer is kept
in a small per-process cache that every server empties of a token the moment it is revoked (a
pub/sub message on ``dateline:tokens:revoked``; the cache also forgets entries after
``CACHE_SECONDS`` in case a message is lost). ``DATELINE_ADMIN_TOKEN`` is compared in constant time
and acts as ``admin:bootstrap``.

Rules (issue 11 "Security basics"; docs/guarantees.md "Security"):
- a token is ``dl_`` and ``TOKEN_BYTES`` bytes from ``secrets`` (the OS's CSPRNG), base64url:
  256 bits, so guessing one, or its SHA-256, is out of reach;
- the store holds only SHA-256 hex digests of tokens, never a token: the token hash (its
  record), the name index, the write allowance and the idempotency claims are all keyed by the
  digest;
- the one comparison of a presented secret with a known one, the bootstrap admin's, is
  ``compare`` (``hmac.compare_digest``), on the digests; every other token is found by its
  digest in a hash, so how long a lookup takes depends on a SHA-256 the asker cannot steer,
  never on how much of a real token they guessed;
- an answer read from the store is kept only if no revocation arrived while it was being read
  (``_revocations``): a token revoked during its own lookup is never cached as valid.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

import orjson

from events.errors import InvalidRequest, TokenNameTaken, UnknownToken
from events.stamp import ROLES, Role
from services.store import keys, scripts
from services.store.connection import Client, reachable

CACHE_SECONDS = 5.0
TOKEN_BYTES = 32
"""Random bytes in a token: 256 bits (at least 128 are needed for a bearer secret)."""
PREFIX = "dl_"
"""What every token starts with, so a scanner for leaked secrets can spot one."""
compare = hmac.compare_digest
"""How a presented token's digest is compared with the bootstrap admin's: in constant time."""
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: a role and the token's name; ``actor`` goes into envelopes."""

    role: Role
    name: str
    token_hash: str

    @property
    def actor(self) -> str:
        return f"{self.role}:{self.name}"

    def may(self, role: Role) -> bool:
        """Admins may do what editors and auditors may."""
        return self.role == role or self.role == "admin"


def token_hash(token: str) -> str:
    """What the store keeps of a token: its SHA-256, in hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A fresh bearer token: ``PREFIX`` and ``TOKEN_BYTES`` bytes from ``secrets``, base64url."""
    return PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


class Tokens:
    """Create, revoke and resolve tokens on the store."""

    def __init__(self, client: Client, admin_token: str | None = None) -> None:
        self.client = client
        self._bootstrap = token_hash(admin_token) if admin_token else None
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        self._listener: asyncio.Task[None] | None = None
        self._revocations = 0
        """Revocations heard (and cache clears): a lookup that spans one is not cached."""
        self._create = client.register_script(scripts.CREATE_TOKEN)

    async def resolve(self, token: str) -> Principal | None:
        """The principal of a bearer token, or None when it is unknown or revoked."""
        digest = token_hash(token)
        if self._bootstrap and compare(digest, self._bootstrap):
            return Principal("admin", "bootstrap", digest)
        hit = self._cache.get(digest)
        now = time.monotonic()
        if hit is not None and hit[0] > now:
            return hit[1]
        heard = self._revocations
        with reachable():
            raw = await self.client.hget(keys.TOKENS, digest)
        principal = None
        if raw is not None:
            record = orjson.loads(raw)
            principal = Principal(record["role"], record["name"], digest)
        if heard != self._revocations:  # revoked while we read: it may be this one; keep nothing
            return principal
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (now + CACHE_SECONDS, principal)
        return principal

    async def create(self, role: str, name: str | None = None) -> tuple[str, Principal]:
        """A new token for ``role``: returned once, stored as its hash."""
        if role not in ROLES:
            raise InvalidRequest(
                f"unknown role {role!r}", {"field": "role", "allowed": list(ROLES)}
            )
        if name is None:
            name = f"{role}-{secrets.token_hex(4)}"
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise InvalidRequest(
                "a token name is 1-64 of a-z, 0-9, '.', '_' and '-', starting with a letter or digit",
                {"field": "name"},
            )
        token = new_token()
        digest = token_hash(token)
        record = orjson.dumps({"role": role, "name": name})
        names, args = scripts.create_token(
            names=keys.TOKEN_NAMES, tokens=keys.TOKENS, name=name, digest=digest, record=record
        )
        with reachable():
            created = await self._create(keys=names, args=args)
        if not created:
            raise TokenNameTaken(f"a token named {name!r} exists")
        return token, Principal(role, name, digest)

    async def revoke(self, name: str) -> None:
        """Revoke a token by name, on every server at once."""
        with reachable():
            digest = await self.client.hget(keys.TOKEN_NAMES, name)
            if digest is None:
                raise UnknownToken(f"no token named {name!r}")
            async with self.client.pipeline(transaction=True) as pipe:  # one slot: {tokens}
                pipe.hdel(keys.TOKENS, digest)
                pipe.hdel(keys.TOKEN_NAMES, name)
                await pipe.execute()
            # then the news, to every server (a cluster refuses a keyless command in a
            # transaction; a publish reaches every node's subscribers). Lost in a crash just
            # before it, the other servers drop the token within their cache's 5 s.
            await self.client.publish(keys.TOKEN_REVOKED, digest)
        self._forget(digest if isinstance(digest, str) else digest.decode())

    def _forget(self, digest: str | None) -> None:
        """Drop ``digest`` from the cache (None: everything), and say a revocation was heard."""
        self._revocations += 1
        if digest is None:
            self._cache.clear()
        else:
            self._cache.pop(digest, None)

    async def any(self) -> bool:
        """Whether the store holds any token (``serve`` creates the first admin when not)."""
        with reachable():
            return bool(await self.client.hlen(keys.TOKENS))

    async def listen(self) -> None:
        """Drop revoked tokens from this process's cache as soon as any server revokes them."""
        while True:
            try:
                async with self.client.pubsub() as pubsub:
                    await pubsub.subscribe(keys.TOKEN_REVOKED)
                    self._forget(None)  # we may have missed messages while disconnected
                    async for message in pubsub.listen():
                        if message["type"] == "message":
                            self._forget(message["data"].decode())
            except asyncio.CancelledError:
                raise
            except Exception:
                self._forget(None)
                await asyncio.sleep(1.0)

    def start(self) -> None:
        if self._listener is None:
            self._listener = asyncio.get_running_loop().create_task(self.listen())

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
