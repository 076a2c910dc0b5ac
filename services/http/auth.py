"""Who is asking: the ``Authorization: Bearer`` token, resolved to a role (CONTRACT "HTTP API").

No header, another scheme, or an unknown or revoked token is 401 ``unauthorized``; a token whose
role may not do this is 403 ``forbidden`` (an admin may do what editors and auditors may). A
write (``writer``) also takes one from the token's write allowance, or is 429 ``rate_limited``
before anything is read, decided or appended (``services/store/limits.py``).
"""

from __future__ import annotations

from fastapi import Request

from events.errors import Forbidden, Unauthorized
from events.stamp import Role
from services.store.limits import WriteLimits
from services.store.tokens import Principal, Tokens


async def principal(tokens: Tokens, request: Request, role: Role) -> Principal:
    """The token's principal, if it may act as ``role``."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("an Authorization: Bearer <token> header is required")
    who = await tokens.resolve(token.strip())
    if who is None:
        raise Unauthorized("unknown or revoked token")
    if not who.may(role):
        raise Forbidden(f"this needs an {role} token; an {who.role} token cannot do it")
    return who


async def writer(tokens: Tokens, limits: WriteLimits, request: Request, role: Role) -> Principal:
    """The token's principal, if it may act as ``role`` and has a write left in its allowance."""
    who = await principal(tokens, request, role)
    await limits.take(who.token_hash)
    return who
