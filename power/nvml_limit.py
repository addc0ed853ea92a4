"""A power cap for desktop/server NVIDIA GPUs through NVML's power-management limit (root)."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from edge_sdk.errors import PowerError
from edge_sdk.nvpmodel_conf import watts_in_name
from edge_sdk.power.controller import ModeChange
from edge_sdk.power.sensor_nvml import nvml_handle

__all__ = ["NvmlPowerLimit"]


class NvmlPowerLimit:
    """Set GPU ``index``'s power limit to a budget such as ``150W``; restore the previous one."""

    kind = "nvml"

    def __init__(self, index: int = 0, nvml: ModuleType | None = None) -> None:
        self.index = index
        self._nvml, self._handle = nvml_handle(index, nvml)

    def limit_w(self) -> float:
        """The current limit in watts."""
        return float(self._call("nvmlDeviceGetPowerManagementLimit")) / 1000.0

    def range_w(self) -> tuple[float, float]:
        """The (min, max) limit the GPU accepts, in watts."""
        low, high = self._call("nvmlDeviceGetPowerManagementLimitConstraints")
        return low / 1000.0, high / 1000.0

    def _call(self, name: str, *args: Any) -> Any:
        try:
            return getattr(self._nvml, name)(self._handle, *args)
        except self._nvml.NVMLError as exc:
            text = str(exc)
            if "permission" in text.lower() or "NoPermission" in type(exc).__name__:
                raise PowerError(
                    f"changing GPU {self.index}'s power limit needs root: run the "
                    f"command with sudo ({text})"
                ) from exc
            raise PowerError(f"NVML {name} on GPU {self.index} failed: {text}") from exc

    def snapshot(self) -> dict[str, Any]:
        return {"index": self.index, "limit_mw": round(self.limit_w() * 1000)}

    def apply(self, target: str, dry_run: bool = False) -> ModeChange:
        """Cap at ``target`` watts (``150W`` or ``150``), within the GPU's accepted range."""
        text = str(target).strip()
        watts = watts_in_name(text) if not text.replace(".", "", 1).isdigit() else float(text)
        if watts is None:
            raise PowerError(f"'{target}' is not a power budget; give watts such as 150W")
        low, high = self.range_w()
        if not low <= watts <= high:
            raise PowerError(
                f"GPU {self.index} accepts power limits from {low:g} W to "
                f"{high:g} W, not {watts:g} W"
            )
        before = self.limit_w()
        changed = abs(before - watts) > 1e-3
        if changed and not dry_run:
            self._call("nvmlDeviceSetPowerManagementLimit", round(watts * 1000))
        return ModeChange(
            self.kind,
            f"{before:g}W",
            f"{watts:g}W",
            changed,
            dry_run,
            [f"nvidia-smi -i {self.index} -pl {watts:g}"],
        )

    def restore(self, snapshot: dict[str, Any]) -> ModeChange:
        return self.apply(f"{snapshot['limit_mw'] / 1000.0:g}W")
