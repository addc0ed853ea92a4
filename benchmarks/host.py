"""The machine a benchmark ran on, for its table header and JSON: CPU model, the ISA flags that
pick quantized kernels (x86 and Arm), cores, RAM, onnxruntime's version and the load average.

    from host import host_info, host_line
    host = host_info(); print(host_line(host)); report["host"] = host

Every benchmark records it: the same runtime is 1.4x or 0.8x llama.cpp depending on whether the
CPU has AVX-512 VNNI, so a figure without its CPU says little.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

from edge_sdk.board import read_cpu_model, read_load_average

__all__ = ["ISA_FLAGS", "host_info", "host_line"]

#: x86: AVX2, AVX-512 (F, VNNI, BF16), AVX-VNNI, AMX; Arm: NEON (asimd), dot product (asimddp),
#: int8 matrix multiply (i8mm), SVE.
ISA_FLAGS = (
    "avx2",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx",
    "asimd",
    "asimddp",
    "i8mm",
    "sve",
)


def _cpu_flags(path: Path) -> set[str]:
    """The CPU's flags (x86 ``flags``, Arm ``Features``) from ``path``."""
    if path.is_file():
        for line in path.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("flags", "Features"):
                return set(value.split())
    return set()


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace").strip("\x00\n ")
    except OSError:
        return ""


def host_info(
    cpuinfo: Path = Path("/proc/cpuinfo"),
    meminfo: Path = Path("/proc/meminfo"),
    board: Path = Path("/proc/device-tree/model"),
) -> dict[str, Any]:
    """CPU model, ISA flags, core count, RAM, Python, onnxruntime and the load average."""
    flags = _cpu_flags(cpuinfo)
    model = read_cpu_model(cpuinfo) or _read(board) or platform.processor() or platform.machine()
    isa = {flag: flag in flags for flag in ISA_FLAGS}
    isa["amx"] = any(f.startswith("amx") for f in flags)
    mem: dict[str, int] = {}
    if meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("MemTotal", "MemAvailable"):
                mem[key] = int(value.split()[0]) * 1024
    try:
        import onnxruntime

        ort_version: str | None = onnxruntime.__version__
    except ImportError:
        ort_version = None
    return {
        "cpu": model,
        "machine": platform.machine(),
        "isa": isa,
        "cpus": os.cpu_count(),
        "mem_total_bytes": mem.get("MemTotal"),
        "mem_available_bytes": mem.get("MemAvailable"),
        "python": platform.python_version(),
        "onnxruntime": ort_version,
        "loadavg": read_load_average() or "?",
    }


def host_line(host: dict[str, Any]) -> str:
    """One line: CPU (machine), cores, RAM, ISA flags, onnxruntime, load."""
    flags = " ".join(name for name, on in host["isa"].items() if on) or "none of " + ",".join(
        ISA_FLAGS
    )
    ram = (host.get("mem_total_bytes") or 0) / 1e9
    return (
        f"{host['cpu']} ({host.get('machine', '?')}), {host['cpus']} cpus, {ram:.1f} GB RAM, "
        f"ISA: {flags}; onnxruntime {host.get('onnxruntime')}; load {host.get('loadavg', '?')}"
    )
