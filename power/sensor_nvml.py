"""Desktop/server NVIDIA GPU power through NVML (``pynvml``), with the energy counter if any."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

from edge_sdk._optional import require
from edge_sdk.errors import BackendUnavailableError, PowerError
from edge_sdk.power.sensors import PowerReading, PowerSensor, RailReading

__all__ = ["NvmlSensor", "nvml_handle"]


def nvml_handle(index: int, nvml: ModuleType | None = None) -> tuple[ModuleType, Any]:
    """Initialise NVML and return ``(pynvml module, device handle)``."""
    module = nvml or require("pynvml", "NVML (NVIDIA GPU power)")
    try:
        module.nvmlInit()
        return module, module.nvmlDeviceGetHandleByIndex(index)
    except module.NVMLError as exc:
        raise BackendUnavailableError(
            f"NVML is not usable here ({exc}): no NVIDIA driver, or no GPU {index}"
        ) from exc


class NvmlSensor(PowerSensor):
    """One GPU's board power (``nvmlDeviceGetPowerUsage``, mW) as rail ``GPU``."""

    kind = "nvml"
    refresh_hz = 10.0

    def __init__(
        self,
        index: int = 0,
        nvml: ModuleType | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(clock)
        self.index = index
        self._nvml = nvml
        self._handle: Any = None
        self._energy0_mj: float | None = None

    def open(self) -> NvmlSensor:
        if self._opened:
            return self
        self._nvml, self._handle = nvml_handle(self.index, self._nvml)
        try:
            self._energy0_mj = float(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))
        except self._nvml.NVMLError:
            self._energy0_mj = None  # Volta and older have no energy counter
        self._opened = True
        return self

    def close(self) -> None:
        if self._opened and self._nvml is not None:
            with contextlib.suppress(self._nvml.NVMLError):
                self._nvml.nvmlShutdown()
        self._opened = False

    def describe(self) -> str:
        counter = "with energy counter" if self._energy0_mj is not None else "no energy counter"
        return f"NVML GPU {self.index} ({counter})"

    def _read(self) -> PowerReading:
        nvml = self._nvml
        assert nvml is not None
        try:
            watts = nvml.nvmlDeviceGetPowerUsage(self._handle) / 1000.0
            energy = None
            if self._energy0_mj is not None:
                mj = float(nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))
                energy = (mj - self._energy0_mj) / 1000.0
        except nvml.NVMLError as exc:
            raise PowerError(f"reading GPU {self.index} power through NVML failed: {exc}") from exc
        rails = {"GPU": RailReading("GPU", watts)}
        return PowerReading(self.clock(), watts, "GPU", rails, energy)
