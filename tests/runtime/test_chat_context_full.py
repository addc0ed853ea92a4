"""edge-run --chat when the conversation fills the context: a terminal is asked whether to start
over (pseudo-terminal, the real CLI in a subprocess), piped input starts over and says so, and a
message too long on its own still fails."""

from __future__ import annotations

import io
import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from edge_sdk.runtime import Generator
from edge_sdk.runtime.cli import main as edge_run

SMALL = ["--chat", "--json", "-n", "20", "--ignore-eos", "--max-context", "40"]


def _turns(out: str) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(chunk) for chunk in out.replace("}\n{", "}\x00{").split("\x00") if chunk]


def _fresh_prompt_tokens(gen: Generator, text: str, system: str | None = None) -> int:
    messages = [{"role": "system", "content": system}] if system else []
    return len(gen.chat_ids([*messages, {"role": "user", "content": text}]))


def test_piped_chat_starts_over_and_retries_the_message(
    demo_bundle_fp32: Path,
    gen_fp32: Generator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("Tom had a ball.\nHe said\n"))
    assert edge_run([str(demo_bundle_fp32), *SMALL, "--system", "Tell stories."]) == 0
    out, err = capsys.readouterr()
    first, second = _turns(out)
    assert first["stats"]["prompt_tokens"] == _fresh_prompt_tokens(
        gen_fp32, "Tom had a ball.", "Tell stories."
    )
    assert "context full (the conversation needs" in err and "the context holds 40" in err
    assert "started a new conversation (system message kept) and sent the message again" in err
    assert second["stats"]["prompt_tokens"] == _fresh_prompt_tokens(
        gen_fp32, "He said", "Tell stories."
    )  # the new conversation: system + the retried line
    assert second["stats"]["context_tokens"] <= 40


def test_piped_message_too_long_alone_fails(
    demo_bundle_fp32: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("Tom had a ball. " * 8 + "\n"))
    assert edge_run([str(demo_bundle_fp32), *SMALL]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "but the context holds 40" in err and "started" not in err


def test_terminal_chat_asks_before_starting_over(
    demo_bundle_fp32: Path, gen_fp32: Generator
) -> None:
    controller, terminal = pty.openpty()
    # turn 1 fits; "He said" does not: answered no; "Then what" does not: Enter is yes
    os.write(controller, b"Tom had a ball.\nHe said\nn\nThen what\n\n/exit\n")
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "edge_sdk.runtime.cli",
                str(demo_bundle_fp32),
                *SMALL,
                "--threads",
                "1",
            ],
            stdin=terminal,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.close(terminal)
        os.close(controller)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("start a new conversation? [Y/n]") == 2
    assert "type /reset to start over" in done.stderr
    first, second = _turns(done.stdout)
    assert first["stats"]["prompt_tokens"] == _fresh_prompt_tokens(gen_fp32, "Tom had a ball.")
    assert second["stats"]["prompt_tokens"] == _fresh_prompt_tokens(gen_fp32, "Then what")
