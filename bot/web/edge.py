"""The HTTP connection guard: idle and slow connections cannot take the server's sockets.

uvicorn waits for request headers forever, so every half-sent request holds a file
descriptor until the client gives up. This protocol (uvicorn's own h11 protocol, plus
two rules) closes a connection whose headers do not arrive within ``HEADER_TIMEOUT``,
and, once more than ``MAX_CONNECTIONS`` are open, closes the connection that has waited
longest without a request in progress (half-sent headers, or idle between keep-alive
requests) to make room: a request being served is never the one dropped. Bodies are
bounded in ``bot.web.limits``.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections import OrderedDict
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)


def default_max_connections() -> int:
    """Half the process's file descriptor limit: the rest is for SQLite, Slack, logs."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return max(16, soft // 2) if soft > 0 else 1024


def guarded_protocol(header_timeout: float, max_connections: int) -> type[H11Protocol]:
    """An ``H11Protocol`` class with these limits, for ``uvicorn.Config(http=...)``."""
    waiting: OrderedDict[int, GuardedH11Protocol] = OrderedDict()  # no headers yet, oldest first

    class GuardedH11Protocol(H11Protocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > max_connections and waiting:
                _, oldest = waiting.popitem(last=False)
                log.warning("%d connections open (MAX_CONNECTIONS %d): closing one that is "
                            "not sending a request", len(self.connections), max_connections)
                oldest._close_idle()
            self._await_headers()

        def data_received(self, data: bytes) -> None:
            if self.cycle is None or self.cycle.response_complete:
                self._await_headers()  # a new request starts with this data
            super().data_received(data)
            if self.cycle is not None and not self.cycle.response_complete:
                self._headers_arrived()

        def connection_lost(self, exc: Exception | None) -> None:
            self._headers_arrived()
            super().connection_lost(exc)

        def on_response_complete(self) -> None:
            super().on_response_complete()  # keep-alive: uvicorn's own idle timeout runs
            if not self.transport.is_closing():
                waiting[id(self)] = self  # idle between requests: first to go when full

        def _headers_arrived(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None
            waiting.pop(id(self), None)

        def _await_headers(self) -> None:
            if self._header_timer is None:
                self._header_timer = self.loop.call_later(header_timeout, self._close_idle)
            waiting.pop(id(self), None)
            waiting[id(self)] = self  # (re)queued at the newest end

        def _close_idle(self) -> None:
            self._headers_arrived()
            if not self.transport.is_closing():
                self.transport.close()

    return GuardedH11Protocol
