"""Who is asking: the ``Authorization: Bearer`` token, resolved to a role (CONTRACT "HTTP API").

No header, another scheme, or an unknown or revoked token is 401 ``unauthorized``; a token whose
role may not do this is 403 ``forbidden`` (an admin may do what editors and auditors may).
"""

from __future__ import annotations

from fastapi import Request

from events.errors import Forbidden, Unauthorized
from events.stamp import Role
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
