"""JSON answers: the media type every API body has, and a value written as orjson bytes."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Response

JSON = "application/json"


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """``body`` (any JSON value) as the answer, written once by orjson."""
    return Response(orjson.dumps(body), status, headers, media_type=JSON)
