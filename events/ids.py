"""Story, entry and embed ids: CONTRACT.md "Words"."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import StringConstraints

ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,63}$"
_ID = re.compile(ID_PATTERN)

Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
"""A story, entry or embed id as the contract allows it."""


def is_id(value: str) -> bool:
    """Whether ``value`` is a well-formed id (used for path parameters before any lookup)."""
    return _ID.fullmatch(value) is not None
