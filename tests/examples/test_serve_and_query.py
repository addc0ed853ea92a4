"""The serving example runs: edge-serve on the demo bundle, queried with the openai client."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_serve_and_query(demo_bundle_int8: Path, tmp_path: Path) -> None:
    env = {**os.environ, "EDGE_SDK_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "serve_and_query.py"),
            "--bundle",
            str(demo_bundle_int8),
            "--slots",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "edge-serve at http://127.0.0.1:" in out and "2 slots" in out
    assert "chat: '" in out and "'prompt_tokens'" in out
    assert "stream: Once upon a time" in out
    assert "The little dog" in out and "Mia and her mom" in out
    assert "edge-serve stopped (exit 0)" in out
