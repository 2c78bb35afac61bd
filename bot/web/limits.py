"""What every endpoint does before trusting a request: a capped, timed body, strict JSON.

The size cap is enforced twice: a declared ``Content-Length`` over it is refused before
reading anything, and the streamed body is counted, since a chunked request declares
none. Bodies are read before their signature can be checked, so they are also bounded
in time (``BODY_TIMEOUT``) and together (``MAX_PENDING_BODY_BYTES``: the bytes of every
body still being read, across all requests): slow or idle clients cannot hold the
server's memory or its connections.

Signed input can still be absurd. ``parse_json`` refuses, with a 400 naming the
problem, what would otherwise fail deep inside the bot: nesting deeper than
``MAX_DEPTH``, integers outside SQLite's 64-bit range, NaN and Infinity, and lone
UTF-16 surrogates (``"\\ud800"``), which no UTF-8 text can hold.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse

MAX_DEPTH = 64
MAX_INT = 2**63 - 1


class RequestRefused(Exception):
    """A request answered with an error before anything was stored."""

    def __init__(self, status: int, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after

    def response(self) -> JSONResponse:
        answer = error(self.status, self.message)
        if self.retry_after is not None:
            answer.headers["Retry-After"] = str(self.retry_after)
        return answer


def error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"ok": False, "error": message, **extra}, status_code=status)


class BodyBudget:
    """The bytes of request bodies being read right now, across every request.

    Only the event loop touches it (reads happen there), so a plain counter is exact.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0

    def take(self, size: int) -> None:
        if self.in_flight + size > self.limit:
            raise RequestRefused(503, "too many request bodies are being received; try again "
                                      "shortly", retry_after=5)
        self.in_flight += size

    def give(self, size: int) -> None:
        self.in_flight -= size


_UNLIMITED = BodyBudget(2**62)


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, or a ``RequestRefused``: 413 over ``limit``, 408 too slow, 503 budget spent."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise RequestRefused(400, "Content-Length is not a number") from None
        if size > limit:
            raise RequestRefused(413, f"body of {size} bytes is over the limit of {limit}")
    state = request.app.state if "app" in request.scope else None
    budget: BodyBudget = getattr(state, "body_budget", None) or _UNLIMITED
    timeout: float = getattr(state, "body_timeout", None) or 30.0
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    total = 0
    stream = request.stream().__aiter__()
    try:
        while True:
            remaining = deadline - time.monotonic()
            try:
                chunk = await asyncio.wait_for(stream.__anext__(), max(remaining, 0.001))
            except StopAsyncIteration:
                break
            except TimeoutError:
                raise RequestRefused(408, f"the body did not arrive within {timeout:g}s") from None
            except ClientDisconnect:
                raise RequestRefused(400, "the client went away before sending the whole "
                                          "body") from None
            total += len(chunk)
            if total > limit:
                raise RequestRefused(413, f"body is over the limit of {limit} bytes")
            budget.take(len(chunk))
            chunks.append(chunk)
    finally:
        budget.give(sum(len(c) for c in chunks))
    return b"".join(chunks)


def _big_int(text: str) -> int:
    value = int(text)
    if not -MAX_INT - 1 <= value <= MAX_INT:
        raise ValueError(f"integer {text[:24]}{'...' if len(text) > 24 else ''} is out of range")
    return value


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_json(body: bytes | str) -> Any:
    """The decoded JSON document, or ``RequestRefused(400)`` saying why it cannot be used."""
    try:
        document = json.loads(body, parse_int=_big_int, parse_constant=_constant)
    except RecursionError:
        raise RequestRefused(400, f"body is not usable JSON: nested deeper than "
                                  f"{MAX_DEPTH}") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise RequestRefused(400, f"body is not valid JSON: {exc}") from None
    problem = json_problem(document)
    if problem is not None:
        raise RequestRefused(400, f"body is not usable JSON: {problem}")
    return document


def json_problem(document: Any) -> str | None:
    """What makes a decoded document unusable (too deep, a lone surrogate), or None.

    Walks the document without recursion, so the walk itself cannot overflow.
    """
    stack: list[tuple[Any, int]] = [(document, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str):
            if not _utf8(node):
                return "a string holds a lone UTF-16 surrogate"
        elif isinstance(node, float):
            if node != node or node in (float("inf"), float("-inf")):
                return "a number is out of range"
        elif isinstance(node, int) and not isinstance(node, bool):
            if not -MAX_INT - 1 <= node <= MAX_INT:
                return "an integer is out of range"
        elif isinstance(node, dict | list):
            if depth >= MAX_DEPTH:
                return f"nested deeper than {MAX_DEPTH}"
            items = node.items() if isinstance(node, dict) else enumerate(node)
            for key, value in items:
                if isinstance(key, str) and not _utf8(key):
                    return "a key holds a lone UTF-16 surrogate"
                stack.append((value, depth + 1))
    return None


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
