"""The machine a backend report was measured on: board, L4T, CPU, memory, onnxruntime.

The same keys as ``benchmarks/host.py`` records for the benchmarks (``cpu``, ``machine``,
``cpus``, ``mem_total_bytes``, ``python``, ``onnxruntime``, ``loadavg``), plus the Jetson's
board, module and L4T release (from :mod:`edge_sdk.board`) and onnxruntime's providers.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

from edge_sdk.board import (
    detect_module,
    read_board_model,
    read_cpu_model,
    read_l4t_release,
    read_load_average,
    read_mem_total,
)

__all__ = ["cpu_model", "host_line", "host_record"]


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name (x86 ``model name``, Arm ``Model``/``Hardware``), else the ISA."""
    return read_cpu_model(cpuinfo) or platform.processor() or platform.machine()


def host_record(onnxruntime: dict[str, Any]) -> dict[str, Any]:
    """Board, module, L4T release, CPU, cores, RAM, Python, load, and ``onnxruntime``
    (``{"version": ..., "providers": [...]}`` as the runtime reports it)."""
    return {
        "board": read_board_model(),
        "module": detect_module(),
        "l4t": read_l4t_release(),
        "cpu": cpu_model(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "mem_total_bytes": read_mem_total(),
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.get("version"),
        "providers": onnxruntime.get("providers", []),
        "loadavg": read_load_average() or "?",
    }


def host_line(host: dict[str, Any]) -> str:
    """One line for the table's footer."""
    board = host.get("module") or host.get("board") or "not a Jetson"
    l4t = f", L4T {host['l4t']}" if host.get("l4t") else ""
    ram = (host.get("mem_total_bytes") or 0) / 2**30
    return (
        f"host: {board}{l4t}; {host['cpu']} ({host['machine']}), {host['cpus']} cpus, "
        f"{ram:.1f} GiB; onnxruntime {host.get('onnxruntime')} "
        f"[{', '.join(host.get('providers') or []) or 'none'}]; load {host['loadavg']}"
    )
