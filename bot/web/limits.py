"""What every endpoint does before trusting a request: a capped body, JSON, and JSON errors.

The cap is enforced twice: a declared ``Content-Length`` over it is refused before
reading anything, and the streamed body is counted, since a chunked request declares none.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse


class RequestRefused(Exception):
    """A request answered with an error before anything was stored."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def response(self) -> JSONResponse:
        return error(self.status, self.message)


def error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"ok": False, "error": message, **extra}, status_code=status)


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, or ``RequestRefused(413)`` as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise RequestRefused(400, "Content-Length is not a number") from None
        if size > limit:
            raise RequestRefused(413, f"body of {size} bytes is over the limit of {limit}")
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise RequestRefused(413, f"body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(body: bytes) -> Any:
    """The decoded JSON document, or ``RequestRefused(400)``."""
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise RequestRefused(400, f"body is not valid JSON: {exc}") from None
