"""Process memory for the backend report: RSS and its resettable peak from /proc, GPU memory from
NVML or jtop with a reason when neither answers, the host record's CPU name."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edge_sdk.power.bench_host import cpu_model
from edge_sdk.power.process_memory import gpu_memory, rss_bytes


def test_rss_fields_from_a_status_file(tmp_path: Path) -> None:
    status = tmp_path / "status"
    status.write_text("Name:\tpython\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\n")
    assert rss_bytes(status=status) == 100 * 2**20
    assert rss_bytes("VmHWM", status) == 200 * 2**20
    assert rss_bytes("VmSwap", status) is None
    assert rss_bytes(status=tmp_path / "missing") is None


_PEAK_CHILD = """
import json
import numpy as np
from edge_sdk.power.process_memory import reset_peak_rss, rss_bytes
block = np.ones(64 * 2**20, dtype=np.uint8)  # 64 MiB touched, then freed
del block
peak = rss_bytes("VmHWM")
reset = reset_peak_rss()
print(json.dumps([reset, peak, rss_bytes(), rss_bytes("VmHWM")]))
"""


def test_peak_rss_resets_to_the_current_rss() -> None:
    """In a fresh interpreter (in the suite's process the freed block may come from memory it
    already holds, and the peak be another test's): a 64 MiB peak, then reset to the RSS."""
    done = subprocess.run(
        [sys.executable, "-c", _PEAK_CHILD], capture_output=True, text=True, check=True
    )
    reset, peak, now, after = json.loads(done.stdout)
    if not reset:
        pytest.skip("this kernel does not let a process reset its peak RSS (clear_refs)")
    assert peak is not None and now is not None and after is not None
    assert after < peak - 32 * 2**20 and after <= now + 4 * 2**20


def test_gpu_memory_says_why_it_has_no_figure() -> None:
    assert gpu_memory(on_gpu=False).to_dict() == {
        "bytes": None,
        "source": None,
        "note": "runs on the CPU",
    }
    found = gpu_memory(on_gpu=True)
    if found.bytes is None:  # no NVML and no jtop here: both named, each with its reason
        assert found.source is None and found.note
        assert found.note.startswith("nvml: ") and "; jtop: " in found.note
    else:
        assert found.source in ("nvml", "jtop") and found.bytes >= 0


def test_cpu_model_from_x86_and_arm_cpuinfo(tmp_path: Path) -> None:
    x86, arm = tmp_path / "x86", tmp_path / "arm"
    x86.write_text("processor\t: 0\nmodel name\t: AMD EPYC 9654\nflags\t: avx2\n")
    arm.write_text("processor\t: 0\nBogoMIPS\t: 62.50\nModel\t: NVIDIA Jetson Orin Nano\n")
    assert cpu_model(x86) == "AMD EPYC 9654"
    assert cpu_model(arm) == "NVIDIA Jetson Orin Nano"
    assert cpu_model(tmp_path / "missing")
