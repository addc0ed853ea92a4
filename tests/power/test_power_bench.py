"""``edge-power bench``: the requested tokens, prompt tokens as prefill, the governor's figures,
``--plot`` checked first, and the README's replay commands run on any machine."""

from __future__ import annotations

import json
import re
import shlex
import sys
from pathlib import Path

import pytest
from power_fakeboard import FIXTURES

from edge_sdk.power import load_trace, sample_trace_path
from edge_sdk.power.cli import main
from edge_sdk.power.efficiency import SUMMARY_VERSION
from edge_sdk.tokenizer import Tokenizer

README = Path(__file__).resolve().parents[2] / "power" / "README.md"
PROMPT = "The Jetson Orin is"  # bench's default prompt; the demo model ends it within a few tokens


@pytest.fixture
def bundle(demo_bundle_int8: Path) -> Path:
    pytest.importorskip("onnxruntime")
    return demo_bundle_int8


def _prompt_tokens(bundle: Path, prompt: str = PROMPT) -> int:
    return len(Tokenizer(bundle / "tokenizer.json").encode(prompt, add_special_tokens=True))


def test_bench_measures_the_requested_tokens_and_the_prompt_as_prefill(
    not_a_jetson, bundle: Path, capsys, tmp_path: Path
) -> None:
    log = tmp_path / "b.jsonl"
    assert (
        main(
            [
                "bench",
                str(bundle),
                "--tokens",
                "128",
                "--sensor",
                "replay:sample",
                "--interval",
                "0.01",
                "--log",
                str(log),
                "--json",
            ]
        )
        == 0
    )
    data = json.loads(capsys.readouterr().out)
    prompt = _prompt_tokens(bundle)
    prefill, decode = data["phases"]["prefill"], data["phases"]["decode"]
    assert data["summary_version"] == SUMMARY_VERSION and data["ignore_eos"] is True
    assert data["run"]["tokens"] == 128 and data["stop_reason"] == "max_new_tokens"
    assert (prefill["tokens"], prefill["token_kind"]) == (prompt, "prompt")
    assert prefill["tokens_per_s"] == pytest.approx(prompt / prefill["duration_s"])
    assert (decode["tokens"], decode["token_kind"]) == (127, "generated")
    assert decode["start"] == prefill["end"]
    records = [json.loads(line) for line in log.open()]
    start = next(r for r in records if r["type"] == "start")
    assert start["prompt_tokens"] == prompt
    assert sum(r["type"] == "token" for r in records) == 128
    summary = next(r for r in records if r["type"] == "summary")
    assert summary["summary_version"] == SUMMARY_VERSION


def test_bench_readable_output_names_what_it_counts(not_a_jetson, bundle: Path, capsys) -> None:
    assert (
        main(
            [
                "bench",
                str(bundle),
                "--tokens",
                "16",
                "--sensor",
                "replay:sample",
                "--interval",
                "0.01",
                "--budget",
                "8",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out.splitlines()
    prompt = _prompt_tokens(bundle)
    assert "16 new tokens per generation (end-of-text ignored)" in out[0]
    assert re.match(rf"prefill\s+{prompt} prompt tokens\s", out[1]), out[1]
    assert re.match(r"decode\s+15 generated tokens\s", out[2]), out[2]
    assert re.match(r"run\s+16 generated tokens\s", out[3]), out[3]
    assert re.match(
        r"governor budget 8\.00 W, window average \d+\.\d\d W, slowdown \d+\.\d %", out[4]
    ), out[4]


def test_plot_without_matplotlib_fails_before_running(
    not_a_jetson, monkeypatch, capsys, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # not installed
    log = tmp_path / "never.jsonl"
    argv = [
        "bench",
        str(tmp_path / "no-such-bundle"),
        "--plot",
        str(tmp_path / "p.png"),
        "--log",
        str(log),
    ]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--plot needs the Python package 'matplotlib'" in err
    assert "[plot]" in err and "no-such-bundle" not in err
    assert not log.exists()


def test_the_sample_trace_ships_and_replays() -> None:
    tomllib = pytest.importorskip("tomllib")
    points = load_trace(sample_trace_path())
    assert len(points) > 100 and {"VDD_IN", "VDD_SOC"} <= set(points[0][2])
    root = Path(__file__).resolve().parents[2]
    config = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    package_dir = root / config["package-dir"]["edge_sdk.power"]
    shipped = [
        f for pattern in config["package-data"]["edge_sdk.power"] for f in package_dir.glob(pattern)
    ]
    assert sample_trace_path() in shipped


def _anywhere_commands() -> list[str]:
    text = README.read_text()
    block = text[text.index("Anywhere (no Jetson needed)") :]
    block = block[block.index("```sh") + 5 :]
    block = block[: block.index("```")]
    return [line for line in block.splitlines() if line.startswith("edge-power ")]


def test_readme_replay_commands_run_anywhere(
    not_a_jetson, bundle: Path, capsys, monkeypatch, tmp_path: Path
) -> None:
    commands = _anywhere_commands()
    assert sum("replay:sample" in c for c in commands) >= 3 and any("--conf" in c for c in commands)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo-bundle").symlink_to(bundle)
    (tmp_path / "board-nvpmodel.conf").write_text(
        (FIXTURES / "nvpmodel_orin_nx_16gb.conf").read_text()
    )
    for command in commands:
        argv = shlex.split(command, comments=True)[1:]
        assert main(argv) == 0, (command, capsys.readouterr().err)
        out = capsys.readouterr().out
        assert out.strip(), command
    assert any(json.loads(line)["type"] == "summary" for line in (tmp_path / "run.jsonl").open())
