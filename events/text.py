"""Plain-text fields: the control characters the contract refuses, and length limits.

CONTRACT.md "Edges": control characters refused in text are U+0000-U+001F except tab, newline and
carriage return, and U+007F. Lone surrogates (U+D800-U+DFFF) are refused too: they cannot be
encoded as UTF-8, so no chain could hash them. Limits are in docs/limits.md.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, StringConstraints

_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def control_characters(value: str) -> list[str]:
    """Each refused control character in ``value`` once, as ``U+XXXX``, in order of appearance."""
    return list(dict.fromkeys(f"U+{ord(c):04X}" for c in _CONTROL.findall(value)))


def _no_control(value: str) -> str:
    found = control_characters(value)
    if found:
        raise ValueError(f"control characters are not allowed: {', '.join(found)}")
    return value


Title = Annotated[str, StringConstraints(min_length=1, max_length=300), AfterValidator(_no_control)]
Summary = Annotated[str, StringConstraints(max_length=2000), AfterValidator(_no_control)]
Headline = Annotated[str, StringConstraints(max_length=300), AfterValidator(_no_control)]
Note = Annotated[str, StringConstraints(min_length=1, max_length=2000), AfterValidator(_no_control)]
TimeLabel = Annotated[str, StringConstraints(max_length=64), AfterValidator(_no_control)]
Caption = Annotated[str, StringConstraints(max_length=1000), AfterValidator(_no_control)]
Body = Annotated[
    str, StringConstraints(min_length=1, max_length=100_000), AfterValidator(_no_control)
]
Url = Annotated[str, StringConstraints(min_length=1, max_length=2048), AfterValidator(_no_control)]
