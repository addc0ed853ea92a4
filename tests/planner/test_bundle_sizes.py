"""The weights estimate against real bundles written by the exporter (within 2%)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_sdk.config import ModelConfig
from edge_sdk.planner import resolve_model, weight_bytes, weight_format

pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


def _tokenizer_json(vocab: int) -> str:
    from tokenizers import Tokenizer, models, pre_tokenizers

    tokenizer = Tokenizer(models.WordLevel({f"w{i}": i for i in range(vocab)}, unk_token="w0"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    return tokenizer.to_str()


@pytest.mark.parametrize(("precision", "tied"), [("int8", True), ("int8", False), ("fp32", True)])
def test_weights_estimate_within_two_percent_of_the_bundle(
    tmp_path: Path, precision: str, tied: bool
) -> None:
    import torch

    from edge_sdk.exporters import LiteForCausalLM, LoadedModel, export

    config = ModelConfig(
        vocab_size=8192,
        hidden_size=384,
        num_layers=2,
        num_heads=4,
        num_kv_heads=2,
        intermediate_size=768,
        tie_word_embeddings=tied,
        max_position_embeddings=256,
        bos_token_id=0,
        eos_token_ids=(0,),
    )
    torch.manual_seed(0)
    model = LiteForCausalLM(config).eval()
    loaded = LoadedModel(model, _tokenizer_json(config.vocab_size), "test", "sizes")
    export(loaded, tmp_path / "bundle", precision, force=True, eval_tokens=64)  # type: ignore[arg-type]
    source = resolve_model(str(tmp_path / "bundle"))
    assert source.kind == "bundle" and source.precision == precision
    assert source.bundle_model_bytes is not None
    estimate = weight_bytes(source.config, weight_format(precision, source.group_size)).stored
    assert estimate == pytest.approx(source.bundle_model_bytes, rel=0.02)
