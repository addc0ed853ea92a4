"""The runtime examples run on the demo bundle (small token counts)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _run(*argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *argv],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_chat_loop(demo_bundle_fp32: Path) -> None:
    done = _run(
        str(EXAMPLES / "chat.py"),
        str(demo_bundle_fp32),
        "--max-new-tokens",
        "8",
        "--seed",
        "1",
        stdin="Tom had a dog.\nThe dog ran.\n",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("bot>") == 2
    assert "context" in done.stderr and "tok/s" in done.stderr


def test_threaded_app_with_cancellation(demo_bundle_fp32: Path) -> None:
    done = _run(
        str(EXAMPLES / "threaded_app.py"),
        str(demo_bundle_fp32),
        "Once upon a time",
        "--max-new-tokens",
        "40",
        "--cancel-after",
        "5",
    )
    assert done.returncode == 0, done.stderr
    assert "[cancelled:" in done.stderr and "[reused: 8 tokens]" in done.stderr
    assert done.stdout.strip()
    full = _run(str(EXAMPLES / "threaded_app.py"), str(demo_bundle_fp32), "--max-new-tokens", "6")
    assert full.returncode == 0 and "[max_new_tokens: 6 tokens" in full.stderr
