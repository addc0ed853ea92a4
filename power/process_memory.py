"""This process's memory for a benchmark: resident set (now and its peak) and GPU memory.

The peak RSS is the kernel's high-water mark (``VmHWM`` in ``/proc/self/status``), reset before
each measured step by writing ``5`` to ``/proc/self/clear_refs`` (Linux 4.0+), so one backend's
peak is not the previous one's. GPU memory comes from NVML (desktop GPUs: the process's entry in
the running compute processes) or jetson-stats (Jetson: ``jtop().processes``); both are
imported lazily and a missing one is a reason in the result, never an error.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edge_sdk._optional import require
from edge_sdk.errors import BackendUnavailableError

__all__ = ["GpuMemory", "gpu_memory", "reset_peak_rss", "rss_bytes"]

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def rss_bytes(field: str = "VmRSS", status: Path = _STATUS) -> int | None:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process in bytes; None where unknown."""
    try:
        for line in status.read_text().splitlines():
            key, _, value = line.partition(":")
            if key == field:
                return int(value.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def reset_peak_rss(clear_refs: Path = _CLEAR_REFS) -> bool:
    """Reset the peak RSS to the current RSS; False where the kernel does not allow it (the
    peak then covers the whole process so far)."""
    try:
        clear_refs.write_text("5")
    except OSError:
        return False
    return True


@dataclass(frozen=True)
class GpuMemory:
    """GPU memory this process holds (``bytes``; None with ``note`` saying why) and where the
    figure came from (``source``: ``nvml`` or ``jtop``)."""

    bytes: int | None
    source: str | None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _nvml_bytes(pid: int) -> int | None:
    from edge_sdk.power.sensor_nvml import nvml_handle

    nvml, _ = nvml_handle(0)
    try:
        total = 0
        found = False
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            for proc in nvml.nvmlDeviceGetComputeRunningProcesses(handle):
                if proc.pid == pid and proc.usedGpuMemory is not None:
                    total += int(proc.usedGpuMemory)
                    found = True
        return total if found else None
    except nvml.NVMLError as exc:
        raise BackendUnavailableError(f"NVML cannot list GPU processes ({exc})") from exc
    finally:
        with contextlib.suppress(nvml.NVMLError):
            nvml.nvmlShutdown()


def _jtop_bytes(pid: int) -> int | None:
    module = require("jtop", "GPU memory on a Jetson")
    try:
        with module.jtop() as jetson:
            # one row per process: pid, user, gpu, type, priority, state, cpu %, mem kB,
            # gpu mem kB, name (jetson-stats 4)
            for row in jetson.processes:
                if int(row[0]) == pid:
                    return int(float(row[8]) * 1024)
    except Exception as exc:  # jtop raises JtopException (and OSError) when its service is down
        raise BackendUnavailableError(f"jetson-stats' service is not usable ({exc})") from exc
    return None


def gpu_memory(on_gpu: bool, pid: int | None = None) -> GpuMemory:
    """GPU memory held by process ``pid`` (default: this one) now; onnxruntime's and TensorRT's
    allocators keep what they reserved, so after a run it is that run's peak. ``on_gpu``:
    whether the backend runs there (False: the figure is not asked for)."""
    if not on_gpu:
        return GpuMemory(None, None, "runs on the CPU")
    pid = os.getpid() if pid is None else pid
    reasons = []
    for source, read in (("nvml", _nvml_bytes), ("jtop", _jtop_bytes)):
        try:
            value = read(pid)
        except BackendUnavailableError as exc:  # a note in the report, not a failure
            reasons.append(f"{source}: {exc}")
            continue
        if value is not None:
            return GpuMemory(value, source)
        reasons.append(f"{source}: this process is not listed")
    return GpuMemory(None, None, "; ".join(reasons))
