"""A Qwen3-family model trained here on the demo corpus (seconds of CPU), exported int8 and int4:
the accuracy gate must pass on a model that predicts something (random weights skip it)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from edge_sdk.checkpoint import read_checkpoint_metadata
from edge_sdk.exporters import QuantConfig, export
from edge_sdk.exporters.checkpoint import save_checkpoint
from edge_sdk.exporters.demo.corpus import generate_stories
from edge_sdk.exporters.demo.train import TRAIN_SEED, demo_config, encode_corpus, train_model

STEPS = 80  # held-out perplexity ~2.7 (400 steps: 2.5; the packaged demo: 1500 steps)


@pytest.fixture(scope="module")
def qwen3_checkpoint(demo_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tokenizer_json = str(read_checkpoint_metadata(demo_checkpoint)["tokenizer"])
    data = torch.from_numpy(encode_corpus(tokenizer_json, generate_stories(3000, TRAIN_SEED)))
    config = demo_config(int(data[-1]), family="qwen3")
    started = time.perf_counter()
    model = train_model(config, data, STEPS, batch=16, seq_len=96, seed=0)
    seconds = time.perf_counter() - started
    print(f"trained a {config.parameter_count():,}-parameter Qwen3 in {seconds:.0f} s")
    path = tmp_path_factory.mktemp("qwen3") / "model.pt"
    save_checkpoint(model, tokenizer_json, path, metadata={"name": "edge-sdk-qwen3-test"})
    return path


@pytest.mark.parametrize(
    "quant",
    [QuantConfig(method="int8"), QuantConfig(method="rtn", bits=4, group_size=32)],
    ids=["int8", "int4"],
)
def test_trained_qwen3_passes_the_gate(
    quant: QuantConfig, qwen3_checkpoint: Path, tmp_path: Path
) -> None:
    result = export(qwen3_checkpoint, tmp_path / "bundle", quant=quant)
    accuracy = result.accuracy
    print(f"{quant.label}: {accuracy}")
    assert accuracy is not None and accuracy.gate == "passed", accuracy
    assert result.bundle.config.architecture == "qwen3" and result.parity.worst <= 1e-4
    assert accuracy.perplexity_float < 20  # it learned the stories: the gate means something
