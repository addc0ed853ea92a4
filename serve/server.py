"""uvicorn on a socket bound beforehand, with SIGTERM draining the server before it exits.

The socket is bound before the model loads (``/health`` answers 503 during the load, port 0
gives a free port). The first SIGTERM or SIGINT drains: new requests get 503 while the running
ones finish (cancelled after the drain timeout); then uvicorn stops. A second signal cancels
what is left and stops at once.
"""

from __future__ import annotations

import copy
import signal
import socket
import threading
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from edge_sdk.serve.app import create_app
from edge_sdk.serve.connections import ConnectionLimits, guarded_protocol
from edge_sdk.serve.state import ServerState

__all__ = ["EdgeServer", "bind", "log_config"]

_AFTER_DRAIN_S = 5.0  # how long uvicorn may still wait for open connections after the drain


def log_config() -> dict[str, Any]:
    """uvicorn's logging, everything on stderr (stdout is for results), plus our logger."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["handlers"]["access"]["stream"] = "ext://sys.stderr"
    config["loggers"]["edge_sdk.serve"] = {
        "handlers": ["default"],
        "level": "INFO",
        "propagate": False,
    }
    return config


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (port 0: a free one); OSError when it cannot be."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


class EdgeServer(uvicorn.Server):
    """uvicorn's server over ``create_app(state)`` with draining on the first signal, and
    ``limits`` on connections (:mod:`edge_sdk.serve.connections`)."""

    def __init__(
        self,
        state: ServerState,
        log_level: str = "info",
        access_log: bool = True,
        limits: ConnectionLimits | None = None,
    ) -> None:
        limits = limits or ConnectionLimits()
        self._protocol = guarded_protocol(limits)
        config = uvicorn.Config(
            create_app(state),
            log_config=log_config(),
            log_level=log_level,
            access_log=access_log,
            lifespan="on",
            timeout_graceful_shutdown=int(_AFTER_DRAIN_S),
            http=self._protocol,
            backlog=limits.backlog,
        )
        super().__init__(config)
        self.state = state
        self.exit_signal: int | None = None
        self._drainer: threading.Thread | None = None
        state.on_failure = self._failed

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await super().shutdown(sockets)
        self._protocol.registry.report()  # the connections dropped since the last report

    def _failed(self, exc: BaseException) -> None:
        self.should_exit = True

    def drain_and_exit(self) -> None:
        """Drain on a background thread, then stop (safe from any thread; once)."""
        if self._drainer is None:
            self._drainer = threading.Thread(
                target=self._drain, name="edge-serve-drain", daemon=True
            )
            self._drainer.start()

    def _drain(self) -> None:
        self.state.drain(self.state.settings.drain_timeout_s)
        self.should_exit = True

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # replaces uvicorn's: it would stop accepting at once and, at the end, raise the signal
        # again (a SIGTERM exit status instead of 0)
        if self._drainer is None:
            self.exit_signal = sig
            self.drain_and_exit()
            return
        self.state.cancel_all()
        self.should_exit = True
        if sig == signal.SIGINT:
            self.force_exit = True
