"""What the shell passes into a decision: the facts the core may not fetch for itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

Role = Literal["editor", "auditor", "admin"]
"""What a token may do (CONTRACT "HTTP API"); an actor is ``<role>:<token name>``."""
ROLES: tuple[Role, ...] = get_args(Role)


@dataclass(frozen=True, slots=True)
class Stamp:
    """Server time, the credential's actor and a fresh id, read by the shell (STYLE.md).

    ``recorded_at`` is UTC ISO 8601 with microseconds and ``Z``; ``actor`` is
    ``<role>:<token name>``; ``new_id`` is used where the server assigns an entry or embed id.
    """

    recorded_at: str
    actor: str
    new_id: str
