"""edge-export says what the user should know: a context capped below the model's own limit
(stderr, summary, --json), and the fused CPU graph built for a Qwen2 model whose q/k/v biases
are all zero (folded away) or, when it cannot be built, why and what that costs."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from edge_sdk.cli_support import Progress
from edge_sdk.exporters import export
from edge_sdk.exporters.cli import main as edge_export
from edge_sdk.exporters.cli import summary_text
from edge_sdk.exporters.fused_graph import ORT_GRAPH_FILE
from edge_sdk.exporters.fused_graph_check import GRAPH_TOLERANCE, FusedSession
from tests.exporters.hf_models import make_hf_folder

pytest.importorskip("transformers")

CAPPED = (
    "context capped at 2048 tokens (the model supports 32768): pass --max-seq-len N to raise it"
)


@pytest.fixture(scope="module")
def zero_bias_qwen2(
    tmp_path_factory: pytest.TempPathFactory, demo_checkpoint: Path
) -> tuple[Path, object]:
    """A tiny Qwen2 folder as a fresh transformers model has it: q/k/v biases all zero; its
    config claims 32768 positions, as Qwen2.5's do."""
    from edge_sdk.checkpoint import read_checkpoint_metadata

    folder = tmp_path_factory.mktemp("qwen2-zero-bias")
    tokenizer = str(read_checkpoint_metadata(demo_checkpoint)["tokenizer"])
    model = make_hf_folder("qwen2", folder, tokenizer, vocab_size=2048)
    with torch.no_grad():
        for name, param in model.named_parameters():  # type: ignore[attr-defined]
            if name.endswith("_proj.bias"):
                param.zero_()
    model.config.max_position_embeddings = 32768  # type: ignore[attr-defined]
    model.save_pretrained(folder, safe_serialization=True)  # type: ignore[attr-defined]
    return folder, model


def test_zero_biases_fold_into_the_fused_graph_and_the_cap_is_said(
    zero_bias_qwen2: tuple[Path, object], tmp_path: Path
) -> None:
    folder, hf = zero_bias_qwen2
    stderr = io.StringIO()
    result = export(folder, tmp_path / "fp32", "fp32", progress=Progress(4, stream=stderr))
    assert result.notes == (CAPPED,) and f"note: {CAPPED}" in stderr.getvalue()
    assert result.context_capped and result.bundle.max_sequence_length == 2048
    summary = summary_text(result)
    assert (
        "context    2048 tokens, capped (the model supports 32768): pass --max-seq-len N "
        "(up to 32768) to raise it"
    ) in summary
    assert f"ort graph  {ORT_GRAPH_FILE}: fused attention" in summary

    fused_path = result.bundle.path / ORT_GRAPH_FILE
    nodes = {node.name for node in onnx.load(str(fused_path)).graph.node}
    assert not any(name.endswith("qkv_biased") for name in nodes)  # zero biases: no Add
    ids = np.random.default_rng(3).integers(0, 2048, 10)
    with torch.no_grad():
        expected = hf(torch.from_numpy(ids[None])).logits.numpy()[0, -1]  # type: ignore[operator]
    session = FusedSession(fused_path, result.bundle.config, 16, {})
    scale = max(1.0, float(np.abs(expected).max()))
    assert np.abs(session.run(ids.tolist()) - expected).max() / scale <= 1e-4


def test_int8_json_reports_the_context_and_the_fused_graph(
    zero_bias_qwen2: tuple[Path, object], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, _ = zero_bias_qwen2
    assert (
        edge_export(
            [
                str(folder),
                "--int8",
                "-o",
                str(tmp_path / "int8"),
                "--eval-tokens",
                "256",
                "--max-seq-len",
                "512",
                "--json",
            ]
        )
        == 0
    )
    out, err = capsys.readouterr()
    data = json.loads(out)
    assert (data["max_sequence_length"], data["model_max_position_embeddings"]) == (512, 32768)
    assert data["context_capped"] and data["notes"] == [] and "note:" not in err  # as asked
    assert data["fused_graph"] and data["fused_graph_skipped"] is None


def test_a_skipped_fused_graph_says_what_is_lost(
    zero_bias_qwen2: tuple[Path, object],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder, _ = zero_bias_qwen2
    monkeypatch.setitem(GRAPH_TOLERANCE, "fp32", -1.0)  # the real check, failed on purpose
    assert (
        edge_export([str(folder), "--fp32", "-o", str(tmp_path / "b"), "--max-seq-len", "64"]) == 0
    )
    out, err = capsys.readouterr()
    lost = (
        f"note: the fused CPU graph ({ORT_GRAPH_FILE}, about 2x faster decode on "
        "onnxruntime's CPU EP) was not built: it disagrees with the PyTorch reference"
    )
    assert lost in err and "runs the standard model.onnx instead" in err
    assert "ort graph  NOT BUILT: it disagrees with the PyTorch reference" in out
    assert "about half the decode speed" in out
    assert "context    64 tokens (--max-seq-len; the model supports 32768)" in out
    assert not (tmp_path / "b" / ORT_GRAPH_FILE).exists()
