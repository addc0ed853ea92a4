"""Bounds on connections: slow or silent clients cannot hold the server's sockets.

uvicorn waits for a request's headers as long as the client likes, before any API key is
checked, so a few hundred clients that stop mid-header exhaust the process's file limit and
``/health`` stops answering. Here, over uvicorn's h11 protocol:

- a connection must send its request headers within ``header_timeout_s`` of opening (or of its
  previous response); otherwise it is closed (one log line);
- at most ``max_connections`` are open: a new one closes the connection that has waited longest
  for its headers (one that is in no request), or, when every connection is inside a request,
  is answered 503 and closed.

The request body has its own deadline (``--body-timeout``, :mod:`edge_sdk.serve.request_body`);
uvicorn's keep-alive timeout closes idle connections between requests, and h11 refuses request
heads over 16 KiB (400).
"""

from __future__ import annotations

import json
import logging
import os
import resource
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from edge_sdk.serve.errors import error_body

__all__ = ["ConnectionLimits", "connection_budget", "guarded_protocol"]

LOG = logging.getLogger("edge_sdk.serve")
FD_RESERVE = 64  # descriptors kept for the model, logs, sensors and the accept loop's overshoot


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
    """The open connections of one server, those waiting for headers oldest first."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.open: set[GuardedH11Protocol] = set()
        self.waiting: OrderedDict[GuardedH11Protocol, None] = OrderedDict()


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
                    f"closed a connection from {oldest._peer} that had not sent its request: "
                    f"the server is at --max-connections {reg.limits.max_connections}"
                )
            else:
                LOG.warning(
                    "refused a connection from %s: all %d connections are inside requests",
                    self._peer,
                    reg.limits.max_connections,
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
        self._drop(
            f"closed a connection from {self._peer}: no complete request within "
            f"{self.registry.limits.header_timeout_s:g} s (--header-timeout)"
        )

    def _drop(self, message: str) -> None:
        self._stop_waiting()
        self.registry.open.discard(self)
        LOG.info(message)
        self.transport.abort()


def guarded_protocol(limits: ConnectionLimits) -> type[GuardedH11Protocol]:
    """The protocol class for one server (its own registry of connections)."""
    return type("EdgeServeProtocol", (GuardedH11Protocol,), {"registry": _Registry(limits)})
