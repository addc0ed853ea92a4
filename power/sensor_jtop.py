"""Power through jetson-stats (``jtop``), which reads the same INA3221 through its service."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from edge_sdk._optional import require
from edge_sdk.errors import BackendUnavailableError, PowerError
from edge_sdk.power.sensors import PowerReading, PowerSensor, RailReading, total_of

__all__ = ["JtopSensor"]


class JtopSensor(PowerSensor):
    """Rails from ``jtop().power['rail']``; needs ``jtop.service`` running."""

    kind = "jtop"
    refresh_hz = 2.0  # jtop's service publishes about twice a second by default

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock)
        self._jtop: Any = None

    def open(self) -> JtopSensor:
        if self._opened:
            return self
        module = require("jtop", "The jtop power sensor")
        try:
            handle = module.jtop()
            handle.start()
        except Exception as exc:  # jtop raises JtopException (and OSError) when the service is down
            raise BackendUnavailableError(
                f"jetson-stats is installed but its service is not usable ({exc}). "
                "Please run: sudo jtop --install-service (or sudo systemctl restart jtop.service)"
            ) from exc
        self._jtop = handle
        self._opened = True
        return self

    def close(self) -> None:
        if self._jtop is not None:
            try:
                self._jtop.close()
            finally:
                self._jtop = None
        self._opened = False

    def _read(self) -> PowerReading:
        try:
            raw = self._jtop.power
            rails = {
                name: RailReading(
                    name, float(v.get("power", 0.0)) / 1000.0, v.get("volt"), v.get("curr")
                )
                for name, v in raw.get("rail", {}).items()
                if v.get("online", True)
            }
        except Exception as exc:  # the service can vanish between reads
            raise PowerError(f"reading power from jtop failed: {exc}") from exc
        total, source = total_of(rails)
        return PowerReading(self.clock(), total, source, rails)
