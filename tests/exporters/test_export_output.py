"""``edge-export``'s output that cannot be written: one line, exit 1, said before the model is
loaded where it can be (a path below a file, a folder nothing can be created in, too little free
space), and a disk that fills up during the write is one line too, with nothing left behind."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge_sdk.exporters.cli import main
from tests.small_disk import run_on_small_disk, small_disk_available

EXPORT = [sys.executable, "-m", "edge_sdk.exporters.cli"]
# the pre-check passed by reporting a large free space: the disk then fills up for real
UNCHECKED_SPACE = (
    "import shutil, sys; real = shutil.disk_usage; "
    "shutil.disk_usage = lambda p: real(p)._replace(free=10**12); "
    "from edge_sdk.exporters.cli import main; sys.exit(main(sys.argv[1:]))"
)


def _edge_export(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*EXPORT, *argv], capture_output=True, text=True, timeout=120, check=False
    )


def _one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edge-export: error: "), stderr
    return lines[0]


def test_an_output_below_a_file_is_one_line_before_loading(
    demo_checkpoint: Path, tmp_path: Path
) -> None:
    (tmp_path / "a_file").write_text("mine")
    done = _edge_export(str(demo_checkpoint), "--fp32", "-o", str(tmp_path / "a_file" / "sub"))
    assert done.returncode == 1
    line = _one_error_line(done.stderr)  # no "[1/4] load" line: nothing was loaded
    assert f"{tmp_path / 'a_file'} is a file, not a folder" in line
    assert (tmp_path / "a_file").read_text() == "mine"


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="no /proc")
def test_an_output_where_nothing_can_be_created_is_one_line_before_loading(
    demo_checkpoint: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    assert main([str(demo_checkpoint), "--fp32", "-o", "/proc/x"]) == 1
    assert "cannot create files in /proc (" in _one_error_line(capsys.readouterr().err)
    assert main([str(demo_checkpoint), "--fp32", "-o", "/proc/new/x"]) == 1
    assert "cannot create files in /proc (" in _one_error_line(capsys.readouterr().err)


def test_a_refused_export_leaves_no_folder_behind(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    missing = tmp_path / "missing.pt"
    assert main([str(missing), "--fp32", "-q", "-o", str(tmp_path / "new" / "dir" / "out")]) == 1
    assert "does not exist" in _one_error_line(capsys.readouterr().err)
    assert os.listdir(tmp_path) == []  # the checked output's parents were not made


def test_no_room_for_a_traced_bundle_is_refused_before_the_export(
    demo_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda _path: usage._replace(free=1000))
    code = main([str(demo_checkpoint), "--fp16", "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1 and "not enough free space in " in err and "the fp16 bundle" in err
    assert "[2/" not in err  # refused before the export stage
    assert not (tmp_path / "out").exists() and os.listdir(tmp_path) == []


def test_a_disk_error_during_the_write_is_one_line_and_leaves_nothing(
    demo_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    """Injected at the OS boundary: ``os.fsync`` of the bundle's files reports ENOSPC (where a
    filesystem with delayed allocation reports a full disk)."""

    def full(_fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    code = main([str(demo_checkpoint), "--fp32", "-o", str(tmp_path / "out"), "-q"])
    err = capsys.readouterr().err
    assert code == 1
    line = _one_error_line(err)
    assert "the disk filled up while writing" in line and "No space left on device" in line
    assert os.listdir(tmp_path) == []  # no bundle, no hidden .out.*.tmp


@pytest.mark.skipif(not small_disk_available(), reason="no unprivileged tmpfs (user namespaces)")
@pytest.mark.parametrize("precision", ["--fp32", "--fp16"])
def test_a_real_disk_that_fills_during_the_write_is_one_line_and_leaves_nothing(
    demo_checkpoint: Path, tmp_path: Path, precision: str
) -> None:
    disk = tmp_path / "disk"
    run = run_on_small_disk(
        [
            sys.executable,
            "-c",
            UNCHECKED_SPACE,
            str(demo_checkpoint),
            precision,
            "-q",
            "-o",
            str(disk / "out"),
        ],
        disk,
        "3m",  # the demo bundle takes ~16 MB (fp32), ~8 MB (fp16)
    )
    assert run.done.returncode == 1, run.stderr
    line = _one_error_line(run.stderr)
    assert "the disk filled up while writing" in line and "No space left on device" in line
    assert run.left == []
