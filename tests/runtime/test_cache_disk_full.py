"""``edge-run`` with its cache (``EDGE_SDK_CACHE_DIR``) on a disk that cannot take the optimized
graph: it runs uncached with one warning line, as with a read-only cache, instead of blaming the
bundle. Real subprocesses: a real full tmpfs (ENOSPC) where the kernel allows one without root,
and a real file-size limit (EFBIG, ``RLIMIT_FSIZE``) everywhere."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.small_disk import run_on_small_disk, small_disk_available

PROMPT = "Once upon a time"
COMMAND = [sys.executable, "-m", "edge_sdk.runtime.cli"]


def _expected(bundle: Path, cache: Path) -> str:
    done = subprocess.run(
        [*COMMAND, str(bundle), PROMPT, "-n", "6"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={**os.environ, "EDGE_SDK_CACHE_DIR": str(cache)},
    )
    return done.stdout


def _check_one_warning(stderr: str) -> None:
    assert "Traceback" not in stderr and "cannot load" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("edge-run: warning: cannot write the optimized-graph cache in ")
    assert "running without it" in lines[0] and "EDGE_SDK_CACHE_DIR" in lines[0]


@pytest.mark.skipif(not small_disk_available(), reason="no unprivileged tmpfs (user namespaces)")
def test_a_full_cache_disk_runs_uncached_with_one_warning(
    demo_bundle_fp32: Path, tmp_path: Path
) -> None:
    disk = tmp_path / "disk"
    run = run_on_small_disk(
        [*COMMAND, str(demo_bundle_fp32), PROMPT, "-n", "6"],
        disk,
        "600k",  # the demo's optimized graph is ~10 MB
        env={"EDGE_SDK_CACHE_DIR": str(disk)},
    )
    assert run.done.returncode == 0, run.stderr
    _check_one_warning(run.stderr)
    assert run.stdout == _expected(demo_bundle_fp32, tmp_path / "cache")
    assert not [path for path in run.left if path.count("/") > 1]  # no half-written entry


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))


def test_a_cache_that_cannot_take_the_graph_runs_uncached_with_one_warning(
    demo_bundle_fp32: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "limited"
    done = subprocess.run(
        [*COMMAND, str(demo_bundle_fp32), PROMPT, "-n", "6"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "EDGE_SDK_CACHE_DIR": str(cache)},
        preexec_fn=_limit_file_size,
    )
    assert done.returncode == 0, done.stderr
    _check_one_warning(done.stderr)
    assert done.stdout == _expected(demo_bundle_fp32, tmp_path / "cache")
    assert not [p for p in (cache / "ort").iterdir() if any(p.iterdir())]  # nothing half-written
