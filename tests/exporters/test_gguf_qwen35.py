"""Qwen3.5 GGUF input (llama.cpp's ``qwen35``): a tiny random Qwen3.5 from transformers (more
value heads than key heads, a multi-token-prediction block appended) written as llama.cpp's
converter writes it, read back to the Hugging Face folder's config and weights, then exported
and run against transformers over a prompt and decode steps."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from edge_sdk import UnsupportedModelError, load_bundle
from edge_sdk.exporters import export, open_model
from edge_sdk.exporters.ort_check import OrtModel
from tests.exporters.gguf_files import write_gguf
from tests.exporters.hf_models import FAMILIES, make_hf_folder

pytest.importorskip("transformers.models.qwen3_5")
gguf = pytest.importorskip("gguf")

Files = tuple[Any, Path, Path]  # transformers' model, its folder, the GGUF written from it


@pytest.fixture(scope="module")
def qwen35(demo_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Files:
    from edge_sdk.checkpoint import read_checkpoint_metadata

    tokenizer = str(read_checkpoint_metadata(demo_checkpoint)["tokenizer"])
    folder = tmp_path_factory.mktemp("qwen35-gguf")
    spec = FAMILIES["qwen3_5"]  # llama.cpp reads the layer pattern from the interval only
    with pytest.MonkeyPatch.context() as patch:
        extra = spec["extra"] | {"full_attention_interval": 2}
        patch.setitem(FAMILIES, "qwen3_5", spec | {"extra": extra})
        hf = make_hf_folder("qwen3_5", folder / "hf", tokenizer, vocab_size=2048)
    path = write_gguf(folder / "tiny.gguf", hf, "qwen3_5", tokenizer, pre="qwen35", mtp_blocks=1)
    return hf, folder / "hf", path


def test_config_and_weights_are_the_hf_folders(qwen35: Files) -> None:
    _, folder, path = qwen35
    ours, theirs = open_model(path), open_model(folder)
    try:
        config = ours.config
        assert config.architecture == "qwen3_5" and config.num_layers == 2  # MTP block not read
        assert config.layer_types == ("linear_attention", "full_attention")
        assert (config.head_dim, config.rotary_dim, config.tie_word_embeddings) == (64, 16, True)
        assert config.linear_attention == theirs.config.linear_attention
        assert config.eos_token_ids[0] == 0  # then the file's end-of-turn token
        assert dataclasses.replace(config, eos_token_ids=theirs.config.eos_token_ids) == (
            theirs.config
        )
        assert ours.weights.names() == theirs.weights.names()
        for name in sorted(theirs.weights.names()):
            assert ours.weights.shape(name) == theirs.weights.shape(name), name
            np.testing.assert_allclose(
                ours.weights.get(name), theirs.weights.get(name), rtol=1e-6, atol=1e-6, err_msg=name
            )
    finally:
        ours.close()
        theirs.close()


def test_export_equals_transformers_over_prompt_and_decode(qwen35: Files, tmp_path: Path) -> None:
    hf, _, path = qwen35
    result = export(path, tmp_path / "bundle", "fp32")
    assert result.parity.worst <= 1e-4
    ids = np.random.default_rng(5).integers(5, 2048, 73)  # a prompt past one 64-token chunk
    prompt, steps = 70, 3
    model = OrtModel(result.bundle.onnx_path, load_bundle(result.bundle.path).config)
    logits, past = model.run(ids[None, :prompt])
    rows = [*logits[0]]
    for token in ids[prompt : prompt + steps]:
        logits, past = model.run(np.array([[token]]), past)
        rows.append(logits[0, -1])
    with torch.no_grad():
        want = hf(torch.from_numpy(ids[None, : prompt + steps])).logits[0].numpy()
    worst = float(np.abs(np.stack(rows) - want).max())
    assert worst <= 1e-4, f"max |logits - transformers'| = {worst}"


def test_unsupported_architecture_names_qwen35(
    qwen35: Files, demo_checkpoint: Path, tmp_path: Path
) -> None:
    from edge_sdk.checkpoint import read_checkpoint_metadata

    hf, _, _ = qwen35
    tokenizer = str(read_checkpoint_metadata(demo_checkpoint)["tokenizer"])
    path = write_gguf(tmp_path / "next.gguf", hf, "qwen3_5", tokenizer, arch="qwen3next")
    message = "GGUF architecture 'qwen3next' is not supported; supported: "
    with pytest.raises(UnsupportedModelError, match=re.escape(message) + ".*qwen35$"):
        open_model(path)
