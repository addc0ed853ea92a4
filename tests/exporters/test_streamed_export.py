"""The streamed exporter: the same function as the traced graph, one layer read at a time, and
bad checkpoints refused before anything is written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from edge_sdk import ExportError, UnsupportedModelError
from edge_sdk.exporters import QuantConfig, export, load_model
from edge_sdk.exporters.onnx_export import export_onnx
from edge_sdk.exporters.sources import ModelSource, open_model
from edge_sdk.onnx_io import past_names, present_names
from tests.exporters.hf_models import WHOLE_MODEL, make_hf_folder


@pytest.fixture(scope="module")
def tokenizer_json(demo_checkpoint: Path) -> str:
    from edge_sdk.checkpoint import read_checkpoint_metadata

    return str(read_checkpoint_metadata(demo_checkpoint)["tokenizer"])


def _padded_feed(config: object, past_len: int) -> dict[str, np.ndarray]:
    """A left-padded batch of two on top of a random past (padding in the past of row 0)."""
    rng = np.random.default_rng(3)
    layers = config.num_layers  # type: ignore[attr-defined]
    shape = (2, config.num_kv_heads, past_len, config.head_dim)  # type: ignore[attr-defined]
    mask = np.ones((2, past_len + 3), np.int64)
    mask[0, :2] = 0
    feed = {
        "input_ids": rng.integers(0, 2048, (2, 3)),
        "attention_mask": mask,
        "position_ids": np.array(
            [[past_len - 2 + i for i in range(3)], [past_len + i for i in range(3)]]
        ),
    }
    for name in past_names(layers):
        feed[name] = rng.standard_normal(shape).astype(np.float32)
    return feed


@pytest.mark.parametrize("family", WHOLE_MODEL)
def test_streamed_fp32_graph_computes_what_the_traced_graph_did(
    family: str, tokenizer_json: str, tmp_path: Path
) -> None:
    folder = tmp_path / family
    make_hf_folder(family, folder, tokenizer_json, vocab_size=2048)
    bundle = export(folder, tmp_path / "bundle", "fp32").bundle
    loaded = load_model(folder)
    traced = export_onnx(loaded.model, tmp_path / "traced.onnx")
    names = ["logits", *present_names(loaded.config.num_layers)]
    feed = _padded_feed(loaded.config, past_len=5)
    new = ort.InferenceSession(str(bundle.onnx_path)).run(names, feed)
    old = ort.InferenceSession(str(traced)).run(names, feed)
    for got, want in zip(new, old, strict=True):
        assert np.abs(got - want).max() / max(1.0, float(np.abs(want).max())) <= 1e-5


class _Recording:
    """A weight source that records what is read, in order (the real one underneath)."""

    def __init__(self, inner: ModelSource) -> None:
        self.inner = inner.weights
        self.reads: list[str] = []

    def names(self) -> frozenset[str]:
        return self.inner.names()

    def shape(self, name: str) -> tuple[int, ...]:
        return self.inner.shape(name)

    def get(self, name: str) -> np.ndarray:
        self.reads.append(name)
        return self.inner.get(name)

    def close(self) -> None:
        self.inner.close()


@pytest.mark.parametrize(
    "quant",
    [
        QuantConfig(method="int8"),
        QuantConfig(method="gptq", bits=4, group_size=32, act_scale=True, lm_head_bits=4),
    ],
    ids=["int8", "gptq-awq-head4"],
)
def test_each_layer_is_read_once_in_order(
    quant: QuantConfig, tokenizer_json: str, tmp_path: Path
) -> None:
    folder = tmp_path / "llama"
    make_hf_folder("llama", folder, tokenizer_json, vocab_size=2048)
    source = open_model(folder)
    recording = _Recording(source)
    source.weights = recording
    result = export(source, tmp_path / "bundle", quant=quant, force=True, eval_tokens=256)
    layers = [int(n.split(".")[2]) for n in recording.reads if n.startswith("model.layers.")]
    per_layer = len(layers) // source.config.num_layers
    assert layers == sorted(layers)  # layer 0's tensors, then layer 1's: never back
    assert all(layers.count(i) == per_layer for i in range(source.config.num_layers))
    assert len(set(recording.reads)) == len(source.weights.names())  # every tensor read...
    repeated = {n for n in recording.reads if recording.reads.count(n) > 1}
    assert repeated <= {"model.embed_tokens.weight", "lm_head.weight"}  # ...layers once
    assert result.parity.worst <= 1e-4 and result.accuracy is not None


def _truncated_folder(tokenizer_json: str, folder: Path) -> Path:
    make_hf_folder("qwen2", folder, tokenizer_json, vocab_size=2048)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    return folder


def test_truncated_checkpoint_is_one_line_and_leaves_nothing(
    tokenizer_json: str, tmp_path: Path
) -> None:
    folder = _truncated_folder(tokenizer_json, tmp_path / "model")
    out = tmp_path / "out"
    run = subprocess.run(
        [sys.executable, "-m", "edge_sdk.exporters.cli", str(folder), "--int8", "-o", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 1, run.stderr
    lines = [line for line in run.stderr.splitlines() if "error:" in line]
    assert len(lines) == 1 and "runs past the end" in lines[0] and "Traceback" not in run.stderr
    assert "model.safetensors" in lines[0]
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["model"]


def test_tensor_that_does_not_match_the_config_is_named(
    tokenizer_json: str, tmp_path: Path
) -> None:
    from safetensors.numpy import load_file, save_file

    folder = tmp_path / "model"
    make_hf_folder("llama", folder, tokenizer_json, vocab_size=2048)
    tensors = load_file(str(folder / "model.safetensors"))
    tensors["model.layers.1.mlp.up_proj.weight"] = tensors["model.layers.1.mlp.up_proj.weight"][
        :, :32
    ]
    save_file(tensors, str(folder / "model.safetensors"))
    with pytest.raises(ExportError, match=r"model\.layers\.1\.mlp\.up_proj\.weight"):
        export(folder, tmp_path / "out", "int8")
    assert not (tmp_path / "out").exists()


def test_a_bundle_larger_than_the_free_space_is_refused_first(
    tokenizer_json: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    folder = tmp_path / "model"
    make_hf_folder("llama", folder, tokenizer_json, vocab_size=2048)
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda _path: usage._replace(free=1000))
    with pytest.raises(ExportError, match="not enough free space") as info:
        export(folder, tmp_path / "out", "int8")
    assert "needs" in str(info.value)
    assert not (tmp_path / "out").exists()


def test_unsupported_family_is_refused_before_reading_weights(tmp_path: Path) -> None:
    import json

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"architectures": ["GPT2LMHeadModel"]}))
    with pytest.raises(UnsupportedModelError, match="LlamaForCausalLM"):
        export(folder, tmp_path / "out", "int8")
