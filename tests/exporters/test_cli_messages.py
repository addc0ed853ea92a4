"""``edge-export``'s smaller messages: a garbage or raw-pickle ``model.pt`` is one whole line
(not torch's paragraph cut mid-sentence, no torch warning before it), Ctrl-C while torch still
imports is one line and exit 130, and ``--int8``'s help says what the default is."""

from __future__ import annotations

import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import tomllib

from edge_sdk.exporters.cli import build_parser, main
from edge_sdk.exporters.quantize.config import QuantConfig

ROOT = Path(__file__).resolve().parents[2]


def test_a_garbage_checkpoint_is_one_whole_line(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    garbage = tmp_path / "model.pt"
    rng = random.Random(25)
    for start in (b"", b"\x80\x02", b"PK\x03\x04"):  # none, a pickle's, a zip's first bytes
        for _ in range(8):
            garbage.write_bytes(start + rng.randbytes(rng.randint(0, 4096)))
            assert main([str(garbage), "--fp32", "-o", str(tmp_path / "out"), "-q"]) == 1
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and err[0].startswith("edge-export: error: "), err
            assert "cannot be loaded safely as a checkpoint: it " in err[0]
            assert "torch.)" not in err[0] and "weights_only" not in err[0]  # torch's text, cut


def test_a_raw_pickle_is_one_line_without_a_torch_warning(tmp_path: Path) -> None:
    raw = tmp_path / "model.pt"
    raw.write_bytes(pickle.dumps({"state_dict": {}}, protocol=4))
    done = subprocess.run(
        [sys.executable, "-m", "edge_sdk.exporters.cli", str(raw), "--fp32", "-q"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "it is a plain pickle, not a file written by torch.save" in lines[0]


def test_ctrl_c_while_torch_imports_is_one_line_and_exit_130(
    demo_checkpoint: Path, tmp_path: Path
) -> None:
    """The console script as pip writes it, from pyproject.toml's entry point."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, function = scripts["edge-export"].split(":")
    # "ready" once the interpreter runs Python code with edge_sdk imported (a signal before that
    # is the interpreter's own start, ~0.1 s); the entry point then imports torch (~2 s here)
    script = (
        f"import sys, edge_sdk; print('ready', flush=True); from {module} import {function}; "
        f"sys.exit({function}())"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script, str(demo_checkpoint), "--fp32", "-o", str(tmp_path / "o")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # SIGINT at its default in the child: a shell starts background jobs (a CI runner's, too)
        # with it ignored, and a Python started so installs no Ctrl-C handler
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert child.stdout is not None and child.stdout.readline() == "ready\n"
    time.sleep(0.2)
    child.send_signal(signal.SIGINT)
    _, stderr = child.communicate(timeout=60)
    assert child.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "edge-export: interrupted"
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr


def test_int8_help_says_the_default() -> None:
    default = QuantConfig.from_precision("int8")
    text = " ".join(build_parser().format_help().split())
    assert f"--int8 int8 weights in blocks of {default.group_size} inputs" in text
    assert "per channel, standard QDQ" not in text
