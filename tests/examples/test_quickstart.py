"""The README's first command runs: the quickstart exports, streams and prints speed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quickstart_exports_streams_and_reports_speed(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "quickstart.py"),
            "--tokens",
            "24",
            "--output",
            str(tmp_path / "bundle"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Once upon a time" in proc.stdout
    assert "decode" in proc.stdout and "tok/s" in proc.stdout
    assert "Power:" in proc.stdout
    assert (tmp_path / "bundle" / "manifest.json").is_file()
