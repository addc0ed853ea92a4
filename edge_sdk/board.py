"""Which Jetson module this is: the device-tree model string and memory, mapped to the catalog.

Reads ``/proc/device-tree/model`` (or ``/sys/firmware/devicetree/base/model``),
``/proc/meminfo`` and the L4T release in ``/etc/nv_tegra_release``. Every path is prefixed by
``EDGE_SDK_SYSFS_ROOT`` when it is set, the same variable the power module uses, so tests and
unusual installs can point it at a fake board.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = [
    "board_path",
    "detect_module",
    "module_name",
    "read_board_model",
    "read_cpu_model",
    "read_l4t_release",
    "read_load_average",
    "read_mem_total",
]

_MODEL_FILES = ("/proc/device-tree/model", "/sys/firmware/devicetree/base/model")
_L4T_RELEASE_FILE = "/etc/nv_tegra_release"
_L4T_RELEASE = re.compile(r"R(\d+)\s*\(release\),\s*REVISION:\s*(\d+)\.(\d+)")
_GIB = 2**30


def board_path(path: str) -> Path:
    """Map an absolute path into ``EDGE_SDK_SYSFS_ROOT`` when it is set."""
    root = os.environ.get("EDGE_SDK_SYSFS_ROOT")
    return Path(root) / path.lstrip("/") if root else Path(path)


def read_board_model() -> str | None:
    """The device-tree model string (e.g. ``NVIDIA Jetson Orin Nano Developer Kit``), or None."""
    for name in _MODEL_FILES:
        try:
            text = board_path(name).read_bytes().decode(errors="ignore").strip("\x00 \n")
        except OSError:
            continue
        if text:
            return text
    return None


def read_l4t_release() -> str | None:
    """The L4T release, e.g. ``36.4.0`` from ``# R36 (release), REVISION: 4.0, ...``, or None."""
    try:
        text = board_path(_L4T_RELEASE_FILE).read_text(errors="ignore")
    except OSError:
        return None
    match = _L4T_RELEASE.search(text)
    return None if match is None else ".".join(match.groups())


def read_mem_total() -> int | None:
    """``MemTotal`` of ``/proc/meminfo`` in bytes, or None."""
    try:
        lines = board_path("/proc/meminfo").read_text(errors="ignore").splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("MemTotal:"):
            parts = line.split()
            return int(parts[1]) * 1024 if len(parts) > 1 and parts[1].isdigit() else None
    return None


def module_name(model: str, mem_total: int | None) -> str | None:
    """The planner catalog's name for a model string and the memory the kernel reports.

    The kernel reports a little less than the module's memory (carve-outs), so the size is
    decided by thresholds between module sizes. Returns None for a board that is not an Orin.
    """
    text = model.lower()
    gib = (mem_total or 0) / _GIB
    if "orin" not in text:
        return None
    if "nano" in text:
        if "super" in text:
            return "orin-nano-super"
        return "orin-nano-4gb" if mem_total is not None and gib < 6 else "orin-nano-8gb"
    if "nx" in text:
        return "orin-nx-8gb" if mem_total is not None and gib < 12 else "orin-nx-16gb"
    if "agx" in text:
        return "agx-orin-32gb" if mem_total is not None and gib < 48 else "agx-orin-64gb"
    return None


def detect_module() -> str | None:
    """The catalog name of the Jetson module this runs on, or None when it is not one."""
    model = read_board_model()
    return None if model is None else module_name(model, read_mem_total())


def read_cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    """The CPU's model name in ``cpuinfo`` (x86 ``model name``, Arm ``Model`` / ``Hardware``),
    or None."""
    try:
        lines = cpuinfo.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "Hardware") and value.strip():
            return value.strip()
    return None


def read_load_average() -> str | None:
    """The 1, 5 and 15 minute load averages of ``/proc/loadavg`` ("0.52 0.61 0.70"), or None."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3]) or None
    except OSError:
        return None
