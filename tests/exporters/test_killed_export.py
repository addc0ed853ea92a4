"""A SIGKILLed ``edge-export`` (what the OOM killer does on a Jetson) leaves its hidden
``.NAME.XXXX.tmp`` folder beside the output and its ``edge-export-*`` work folder in the
temporary directory; the next export, and ``edge-cache clear``, remove those whose owner process
is gone, and never a live export's. Real processes, a real SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from edge_sdk.exporters import export
from edge_sdk.owned_dirs import OWNER_FILE, make_owned_dir, owner_gone

# a live process that owns one folder in each place, as a running export does
HOLDER = (
    "import sys, time; from pathlib import Path; from edge_sdk.owned_dirs import make_owned_dir; "
    "make_owned_dir(Path(sys.argv[1]), sys.argv[2], '.tmp'); "
    "make_owned_dir(Path(sys.argv[3]), 'edge-export-'); print('ready', flush=True); time.sleep(60)"
)
# a process that made its folders and ended without removing them
LEAVER = (
    "import sys; from pathlib import Path; from edge_sdk.owned_dirs import make_owned_dir; "
    "make_owned_dir(Path(sys.argv[1]), 'edge-export-')"
)


def _leftovers(out: Path, tmp: Path) -> tuple[list[Path], list[Path]]:
    return sorted(out.parent.glob(f".{out.name}.*.tmp")), sorted(tmp.glob("edge-export-*"))


def _kill_mid_export(checkpoint: Path, out: Path, tmp: Path) -> None:
    """Start a real fp16 export and SIGKILL it once both of its folders exist."""
    env = {**os.environ, "TMPDIR": str(tmp)}
    command = [sys.executable, "-m", "edge_sdk.exporters.cli", str(checkpoint), "--fp16"]
    child = subprocess.Popen([*command, "-o", str(out), "-q"], env=env)
    try:
        deadline = time.monotonic() + 120
        while not all(
            found and (found[0] / OWNER_FILE).is_file() for found in _leftovers(out, tmp)
        ):
            assert child.poll() is None, "the export ended before it could be killed"
            assert time.monotonic() < deadline, "the export never made its folders"
            time.sleep(0.02)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL


def test_the_next_export_removes_what_a_killed_one_left_and_keeps_a_live_ones(
    demo_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, tmp = tmp_path / "demo", tmp_path / "tmp"
    tmp.mkdir()
    _kill_mid_export(demo_checkpoint, out, tmp)
    (stale_beside,), (stale_work,) = _leftovers(out, tmp)
    assert owner_gone(stale_beside) and owner_gone(stale_work)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path), f".{out.name}.live.", str(tmp)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "ready\n"
        live_beside, live_work = (
            set(found) - {stale_beside, stale_work} for found in _leftovers(out, tmp)
        )
        monkeypatch.setattr(tempfile, "tempdir", str(tmp))
        export(demo_checkpoint, out, "fp32")  # the next export
        assert _leftovers(out, tmp) == (sorted(live_beside), sorted(live_work))
        assert (out / "manifest.json").is_file() and not (out / OWNER_FILE).exists()
    finally:
        holder.kill()
        holder.wait(timeout=30)


def test_edge_cache_clear_removes_the_work_folders_of_killed_exports(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-c", LEAVER, str(tmp_path)], check=True, timeout=60)
    (stale,) = tmp_path.glob("edge-export-*")
    live = make_owned_dir(tmp_path, "edge-export-")  # this process: alive
    legacy = tmp_path / "edge-export-old"  # no owner recorded: never removed
    legacy.mkdir()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge_sdk.runtime.cache_cli",
            "clear",
            "--cache-dir",
            str(tmp_path / "cache"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr
    assert f"removed {stale} (the work folder of a killed export)" in done.stdout
    assert sorted(tmp_path.glob("edge-export-*")) == sorted([live, legacy])


def test_a_reused_pid_does_not_keep_a_stale_folder(tmp_path: Path) -> None:
    folder = make_owned_dir(tmp_path, "edge-export-")
    assert not owner_gone(folder)  # this process
    _pid, host, _started = (folder / OWNER_FILE).read_text().split()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (folder / OWNER_FILE).write_text(f"{other.pid} {host} 1\n")  # the pid, reused later
        assert owner_gone(folder) == Path(f"/proc/{other.pid}/stat").exists()
        (folder / OWNER_FILE).write_text(f"{other.pid} another-host 1\n")
        assert not owner_gone(folder)  # another machine's process: cannot tell, kept
    finally:
        other.kill()
        other.wait(timeout=30)
    (folder / OWNER_FILE).write_text(f"{other.pid} {host} 1\n")
    assert owner_gone(folder)  # ended (and reaped)
