"""The shared shape of commands and events: frozen, strict pydantic models.

An event's ``data`` (as stored and hashed) is ``model_dump(exclude_none=True)`` of its model, so
absent optional fields are absent, never ``null``; the type string is a class attribute.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, JsonValue


class Command(BaseModel):
    """What a newsroom tool asks for: the request's ``data``, validated, ids maybe unassigned."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    TYPE: ClassVar[str]


class EventData(BaseModel):
    """What was decided: the event's ``data``, with every server-assigned id filled in."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    TYPE: ClassVar[str]

    def to_data(self) -> dict[str, JsonValue]:
        """The ``data`` object as stored and hashed."""
        return self.model_dump(mode="json", exclude_none=True)
