"""Bounds on connections: slow or silent clients cannot hold the server's sockets.

uvicorn waits for a request's headers as long as the client likes, before any API key is
checked, so a few hundred clients that stop mid-header exhaust the process's file limit and
``/health`` stops answering. Here, over uvicorn's h11 protocol:

- a connection must send its request headers within ``header_timeout_s`` of opening (or of its
  previous response); otherwise it is closed;
- at most ``max_connections`` are open: a new one closes the connection that has waited longest
  for its headers (one that is in no request), or, when every connection is inside a request,
  is answered 503 and closed.

Dropped connections are counted and logged as one summary line every ``REPORT_EVERY_S`` (and at
shutdown), each one at debug level: a client opening thousands cannot flood the log.

The request body has its own deadline (``--body-timeout``, :mod:`edge_sdk.serve.request_body`);
uvicorn's keep-alive timeout closes idle connections between requests, and h11 refuses request
heads over 16 KiB (400).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import resource
from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from edge_sdk.serve.errors import error_body

__all__ = ["ConnectionLimits", "connection_budget", "guarded_protocol"]

LOG = logging.getLogger("edge_sdk.serve")
FD_RESERVE = 64  # descriptors kept for the model, logs, sensors and the accept loop's overshoot
REPORT_EVERY_S = 10.0


@dataclass(frozen=True)
class ConnectionLimits:
    """``max_connections`` open at once; ``header_timeout_s`` to send a request's headers."""

    max_connections: int = 256
    header_timeout_s: float = 10.0

    @property
    def backlog(self) -> int:
        """Connections accepted per turn of the event loop (and the listen backlog): small
        enough that one turn cannot run past the file limit before evictions free sockets."""
        return max(8, min(128, self.max_connections // 4))


def connection_budget(wanted: int) -> tuple[int, int]:
    """``(max_connections, file_limit)``: ``wanted``, lowered to what the process's open-file
    limit (``ulimit -n``) leaves after the descriptors in use and a reserve."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted, soft
    try:
        in_use = len(os.listdir("/proc/self/fd"))
    except OSError:
        in_use = 32
    room = soft - in_use - FD_RESERVE
    allowed = room - max(8, min(128, room // 4))  # the accept loop's overshoot (backlog)
    return max(1, min(wanted, allowed)), soft


class _Registry:
    """The open connections of one server, those waiting for headers oldest first, and the
    connections dropped since the last report (one log line per :data:`REPORT_EVERY_S`: a
    client that opens thousands must not flood the log, or block on it)."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.open: set[GuardedH11Protocol] = set()
        self.waiting: OrderedDict[GuardedH11Protocol, None] = OrderedDict()
        self.dropped: Counter[str] = Counter()
        self._report: asyncio.TimerHandle | None = None

    def count_drop(self, reason: str, loop: asyncio.AbstractEventLoop) -> None:
        self.dropped[reason] += 1
        if self._report is None:
            self._report = loop.call_later(REPORT_EVERY_S, self.report)

    def report(self) -> None:
        """Log the connections dropped since the last report (nothing if none)."""
        if self._report is not None:
            self._report.cancel()
            self._report = None
        if self.dropped:
            LOG.warning(
                "closed %d connection(s) that sent no complete request: %s",
                sum(self.dropped.values()),
                ", ".join(f"{count} {why}" for why, count in self.dropped.items()),
            )
            self.dropped.clear()


_BUSY = json.dumps(
    error_body(
        503,
        "the server holds its maximum number of connections, all inside requests; retry",
        code="too_many_connections",
    )
).encode()
_BUSY_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
    b"retry-after: 1\r\nconnection: close\r\ncontent-length: "
    + str(len(_BUSY)).encode()
    + b"\r\n\r\n"
    + _BUSY
)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a header deadline and a connection cap (:data:`registry`)."""

    registry: _Registry

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: Any = None

    @property
    def _peer(self) -> str:
        return f"{self.client[0]}:{self.client[1]}" if self.client else "a client"

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        reg = self.registry
        if len(reg.open) >= reg.limits.max_connections:
            if reg.waiting:
                oldest, _ = reg.waiting.popitem(last=False)
                oldest._drop(
                    f"to make room (--max-connections {reg.limits.max_connections}) for a new one"
                )
            else:
                reg.count_drop(
                    f"refused with 503: all {reg.limits.max_connections} connections were "
                    "inside requests",
                    self.loop,
                )
                transport.write(_BUSY_RESPONSE)
                transport.close()
                return
        reg.open.add(self)
        self._await_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_waiting()
        self.registry.open.discard(self)
        super().connection_lost(exc)

    def handle_events(self) -> None:
        cycle = self.cycle
        super().handle_events()
        if self.cycle is not cycle:  # a request's headers arrived
            self._stop_waiting()

    def on_response_complete(self) -> None:
        cycle = self.cycle
        super().on_response_complete()  # may start a pipelined request (a new cycle)
        if self.cycle is cycle and not self.transport.is_closing() and self in self.registry.open:
            self._await_headers()  # the next request, on this kept-alive connection

    def _await_headers(self) -> None:
        self._stop_waiting()
        self.registry.waiting[self] = None
        self._header_timer = self.loop.call_later(
            self.registry.limits.header_timeout_s, self._header_timeout
        )

    def _stop_waiting(self) -> None:
        self.registry.waiting.pop(self, None)
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        self._drop(f"after {self.registry.limits.header_timeout_s:g} s (--header-timeout)")

    def _drop(self, why: str) -> None:
        self._stop_waiting()
        self.registry.open.discard(self)
        LOG.debug("closed the connection from %s: no complete request; %s", self._peer, why)
        self.registry.count_drop(why, self.loop)
        self.transport.abort()


def guarded_protocol(limits: ConnectionLimits) -> type[GuardedH11Protocol]:
    """The protocol class for one server (its own registry of connections)."""
    return type("EdgeServeProtocol", (GuardedH11Protocol,), {"registry": _Registry(limits)})
