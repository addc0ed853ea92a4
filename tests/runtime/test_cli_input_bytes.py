"""``edge-run`` given bytes that are not UTF-8, in a real subprocess: the prompt on stdin, in argv
and as a ``--chat`` line. Each undecodable byte becomes U+FFFD, one warning line says so, and the
model runs (exit 0, no traceback)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge_sdk.runtime import Generator

BAD = b"Once \xff\xfe"
REPLACED = "Once \ufffd\ufffd"


def _edge_run(
    bundle: Path, *argv: str | bytes, stdin: bytes = b"", locale: str = "C.UTF-8"
) -> subprocess.CompletedProcess[bytes]:
    # C.UTF-8: stdin is strict UTF-8 there (the C locale would hand bad bytes over as surrogates)
    env = {**os.environ, "LC_ALL": locale, "PYTHONUTF8": "0"}
    command = [sys.executable, "-m", "edge_sdk.runtime.cli", str(bundle), *argv]
    return subprocess.run(
        command, input=stdin, capture_output=True, timeout=120, check=False, env=env
    )


def _warning_lines(stderr: bytes) -> list[str]:
    text = stderr.decode("utf-8", "replace")
    assert "Traceback" not in text, text
    return [line for line in text.splitlines() if "not valid UTF-8" in line]


def _expected(gen_fp32: Generator) -> str:
    return gen_fp32.generate(REPLACED, max_new_tokens=6).text


@pytest.mark.parametrize("locale", ["C.UTF-8", "C"])
def test_prompt_on_stdin_is_decoded_with_replacement(
    demo_bundle_fp32: Path, gen_fp32: Generator, locale: str
) -> None:
    done = _edge_run(demo_bundle_fp32, "-n", "6", "--json", stdin=BAD, locale=locale)
    assert done.returncode == 0, done.stderr.decode()
    assert _warning_lines(done.stderr) == [
        "edge-run: warning: the prompt is not valid UTF-8; each undecodable byte was replaced "
        "by U+FFFD"
    ]
    assert json.loads(done.stdout)["text"] == _expected(gen_fp32)


def test_prompt_in_argv_and_stop_are_decoded_with_replacement(
    demo_bundle_fp32: Path, gen_fp32: Generator
) -> None:
    done = _edge_run(demo_bundle_fp32, BAD, "-n", "6", "--json", "--stop", b"\xff")
    assert done.returncode == 0, done.stderr.decode()
    assert len(_warning_lines(done.stderr)) == 1  # one line, though two flags had bad bytes
    assert json.loads(done.stdout)["text"] == _expected(gen_fp32)


def test_chat_line_is_decoded_with_replacement(demo_bundle_fp32: Path) -> None:
    done = _edge_run(
        demo_bundle_fp32, "--chat", "-n", "4", "--json", stdin=BAD + b"\n" + b"hi \xc3\n"
    )
    assert done.returncode == 0, done.stderr.decode()
    warnings = _warning_lines(done.stderr)
    assert len(warnings) == 1 and "a --chat line is not valid UTF-8" in warnings[0]
    turns = [line for line in done.stdout.decode().splitlines() if line == "{"]
    assert len(turns) == 2  # both lines ran, one JSON object each
