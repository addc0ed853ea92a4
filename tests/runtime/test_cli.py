"""``edge-run`` on the demo bundle, in-process (the console script calls the same main)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from edge_sdk.runtime.cli import main

PROMPT = "Once upon a time"


def _run(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    *argv: str,
    stdin: str | None = None,
) -> tuple[int, str, str]:
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_streams_text_and_stats(demo_bundle_fp32: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    code, out, err = _run(capsys, monkeypatch, str(demo_bundle_fp32), PROMPT, "-n", "12", "--stats")
    assert code == 0 and len(out.strip()) > 10
    assert "12 new tokens" in err and "tok/s" in err and "TTFT" in err


def test_standard_graph_flag(demo_bundle_fp32: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    runs = {}
    for extra in ([], ["--standard-graph"]):
        code, out, _ = _run(
            capsys, monkeypatch, str(demo_bundle_fp32), PROMPT, "-n", "16", "--json", *extra
        )
        assert code == 0
        runs[bool(extra)] = json.loads(out)
    assert runs[False]["stats"]["backend"].endswith("model.ort.onnx")
    assert runs[True]["stats"]["backend"].endswith("model.onnx")
    assert runs[False]["token_ids"] == runs[True]["token_ids"]


def test_speculative_flag(demo_bundle_fp32: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    prompt = "The cat sat on the mat. The cat sat on the mat. The cat sat on the"
    runs = {}
    for extra in ([], ["--speculative", "ngram", "--draft-max", "4"]):
        code, out, _ = _run(
            capsys, monkeypatch, str(demo_bundle_fp32), prompt, "-n", "32", "--json", *extra
        )
        assert code == 0
        runs[bool(extra)] = json.loads(out)
    assert runs[True]["token_ids"] == runs[False]["token_ids"]
    stats = runs[True]["stats"]
    assert stats["drafted_tokens"] > 0 and stats["model_calls"] <= 32
    assert stats["tokens_per_call"] == pytest.approx(32 / stats["model_calls"])
    assert runs[False]["stats"]["drafted_tokens"] == 0


def test_json_with_every_option_and_stdin(demo_bundle_fp32: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    argv = [
        str(demo_bundle_fp32),
        "--json",
        "-n",
        "20",
        "--temperature",
        "0.8",
        "--top-k",
        "40",
        "--top-p",
        "0.9",
        "--repetition-penalty",
        "1.1",
        "--seed",
        "3",
        "--stop",
        "qqq",
        "--stop",
        "zzz",
        "--threads",
        "1",
        "--backend",
        "ort-cpu",
        "--max-context",
        "64",
        "--no-verify",
    ]
    code, out, _ = _run(capsys, monkeypatch, *argv, stdin=PROMPT + "\n")
    assert code == 0
    data = json.loads(out)
    assert {"text", "token_ids", "stop_reason", "stats"} <= set(data)
    assert data["stats"]["prompt_tokens"] == 4 and data["stats"]["new_tokens"] == len(
        data["token_ids"]
    )
    _, again, _ = _run(capsys, monkeypatch, *argv, stdin=PROMPT)
    assert json.loads(again)["token_ids"] == data["token_ids"]  # same seed, same text
    ids_line = next(line for line in out.splitlines() if '"token_ids"' in line)
    assert json.loads("{" + ids_line.rstrip(",") + "}")["token_ids"] == data["token_ids"]
    assert len(out.splitlines()) < 30  # one line for the ids, not one per id


def test_stop_string_and_eos(demo_bundle_fp32: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = _run(capsys, monkeypatch, str(demo_bundle_fp32), PROMPT, "--json")
    full = json.loads(out)
    assert full["stop_reason"] == "eos"
    stop = full["text"][20:26]
    code, out, _ = _run(
        capsys, monkeypatch, str(demo_bundle_fp32), PROMPT, "--json", "--stop", stop
    )
    cut = json.loads(out)
    assert code == 0
    assert cut["stop_reason"] == "stop" and cut["text"] == full["text"][: full["text"].index(stop)]


@pytest.mark.parametrize(
    "argv, stdin, message",
    [
        (["the dog ran. " * 300], None, "context holds"),
        ([""], None, "empty"),
        ([], "", "empty"),
        (["hi", "-n", "-3"], None, "max_new_tokens"),
        (["hi", "--speculative", "medusa"], None, "unknown speculative method 'medusa'"),
        (["hi", "--speculative", "ngram", "--draft-max", "0"], None, "k_max must be an integer"),
    ],
)
def test_errors_are_one_line(
    demo_bundle_fp32: Path, capsys, monkeypatch, argv, stdin, message
) -> None:  # type: ignore[no-untyped-def]
    code, out, err = _run(capsys, monkeypatch, str(demo_bundle_fp32), *argv, stdin=stdin)
    assert code == 1 and out == ""
    assert (
        err.startswith("edge-run: error:") and message in err and len(err.strip().splitlines()) == 1
    )


def test_unknown_backend_and_missing_bundle(
    demo_bundle_fp32: Path, tmp_path: Path, capsys, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as exc:
        main([str(demo_bundle_fp32), "hi", "--backend", "gpu"])
    assert exc.value.code == 2 and "invalid choice: 'gpu'" in capsys.readouterr().err
    code, _, err = _run(capsys, monkeypatch, str(tmp_path / "nope"), "hi")
    assert code == 1 and "bundle" in err


def test_chat_keeps_turns(demo_bundle_fp32: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = _run(
        capsys,
        monkeypatch,
        str(demo_bundle_fp32),
        "--chat",
        "--json",
        "-n",
        "6",
        "--ignore-eos",
        stdin="Tom had a ball.\n\nHe said\n",
    )
    assert code == 0
    turns = [json.loads(chunk) for chunk in out.replace("}\n{", "}\x00{").split("\x00")]
    assert len(turns) == 2
    assert turns[1]["stats"]["context_tokens"] > turns[0]["stats"]["context_tokens"] + 6


def test_console_script(demo_bundle_fp32: Path) -> None:
    exe = Path(sys.executable).with_name("edge-run")
    if not exe.exists():
        pytest.skip("edge-run is not installed in this environment (pip install -e .)")
    done = subprocess.run(
        [str(exe), str(demo_bundle_fp32), PROMPT, "-n", "8"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and done.stdout.strip()
