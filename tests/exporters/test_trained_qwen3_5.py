"""A tiny Qwen3.5 (three Gated DeltaNet layers, one gated attention layer) trained here on the
demo corpus, saved as a Hugging Face folder and exported int8 and int4: the accuracy gate must
pass on a model that predicts something (random weights skip it).

It is trained as the exporter's own layer reference (:mod:`~edge_sdk.exporters.families.
qwen3_5_layers`, whose outputs equal transformers' layers: ``test_qwen3_5_layers.py``) stacked
into a model: transformers' CPU fallback of the chunked delta rule loops over a chunk's rows and
trains ~50x slower.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import Tensor, nn

from edge_sdk.checkpoint import read_checkpoint_metadata
from edge_sdk.config import ModelConfig
from edge_sdk.exporters import QuantConfig, export
from edge_sdk.exporters.demo.corpus import generate_stories
from edge_sdk.exporters.demo.train import TRAIN_SEED, encode_corpus, fit
from edge_sdk.exporters.families.qwen3_5_layers import GatedAttentionLayer, LinearAttentionLayer
from edge_sdk.exporters.model import RMSNorm, attention_bias, rope_inverse_frequencies
from edge_sdk.exporters.quantize.scaling import one_thread

transformers = pytest.importorskip("transformers")

STEPS = 200
_ONE_PLUS_W = ("layernorm.weight", "q_norm.weight", "k_norm.weight", "model.norm.weight")


def _hf_config(vocab: int) -> object:
    return transformers.Qwen3_5TextConfig(
        vocab_size=vocab,
        hidden_size=64,
        intermediate_size=192,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=64,  # a quarter rotated: 16 channels, what GroupQueryAttention takes
        linear_num_key_heads=2,
        linear_num_value_heads=4,
        linear_key_head_dim=16,
        linear_value_head_dim=16,
        linear_conv_kernel_dim=4,
        layer_types=["linear_attention"] * 3 + ["full_attention"],
        rope_parameters={"rope_type": "default", "rope_theta": 1e4, "partial_rotary_factor": 0.25},
        tie_word_embeddings=True,
        max_position_embeddings=512,
        eos_token_id=0,
        bos_token_id=0,
        architectures=["Qwen3_5ForCausalLM"],
    )


class _Model(nn.Module):
    """The reference layers under an embedding, a final norm and the tied head (HF names)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        nn.init.normal_(self.embed_tokens.weight, std=0.05)
        self.layers = nn.ModuleList(
            LinearAttentionLayer(config)
            if config.layer_type(i) == "linear_attention"
            else GatedAttentionLayer(config)
            for i in range(config.num_layers)
        )
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)

    def forward(self, ids: Tensor) -> Tensor:
        x = self.embed_tokens(ids)
        b, s = ids.shape
        angles = torch.arange(s)[:, None].float() * rope_inverse_frequencies(self.config)
        cos, sin = (
            f(torch.cat((angles, angles), -1)).expand(b, s, -1) for f in (torch.cos, torch.sin)
        )
        bias = attention_bias(torch.ones(b, s, dtype=torch.int64), s, x.dtype)
        for layer in self.layers:
            x = (
                layer(x)
                if isinstance(layer, LinearAttentionLayer)
                else layer(x, cos, sin, bias, None)
            )
            x = x[0]
        return self.norm(x) @ self.embed_tokens.weight.T

    def hf_state_dict(self) -> dict[str, Tensor]:
        """Hugging Face's tensors: ``model.*``, each 1 + w norm stored as w."""
        state = {}
        for name, value in self.state_dict().items():
            full = f"model.{name}"
            state[full] = (value - 1 if full.endswith(_ONE_PLUS_W) else value).contiguous()
        return state


@pytest.fixture(scope="module")
def qwen3_5_folder(demo_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tokenizer_json = str(read_checkpoint_metadata(demo_checkpoint)["tokenizer"])
    data = torch.from_numpy(encode_corpus(tokenizer_json, generate_stories(3000, TRAIN_SEED)))
    hf_config = _hf_config(int(data.max()) + 1)
    config = ModelConfig.from_hf_dict(hf_config.to_dict())  # type: ignore[attr-defined]
    torch.manual_seed(0)
    model = _Model(config)
    started = time.perf_counter()
    with one_thread():
        fit(model, model, data, STEPS, batch=16, seq_len=64, seed=0)
    print(f"trained a tiny Qwen3.5 in {time.perf_counter() - started:.0f} s")
    folder = tmp_path_factory.mktemp("qwen3_5") / "hf"
    folder.mkdir()
    hf_config.save_pretrained(folder)  # type: ignore[attr-defined]
    save_file(model.hf_state_dict(), folder / "model.safetensors")
    (folder / "tokenizer.json").write_text(tokenizer_json, encoding="utf-8")
    return folder


def test_the_trained_folder_is_what_transformers_computes(qwen3_5_folder: Path) -> None:
    hf = transformers.Qwen3_5ForCausalLM.from_pretrained(qwen3_5_folder).eval()
    reloaded = _Model(ModelConfig.from_hf_dict(hf.config.to_dict()))
    state = {
        k.removeprefix("model."): v for k, v in hf.state_dict().items() if k != "lm_head.weight"
    }
    reloaded.load_state_dict(
        {k: v + 1 if f"model.{k}".endswith(_ONE_PLUS_W) else v for k, v in state.items()}
    )
    ids = torch.from_numpy(np.arange(5, 75)[None] % 700)
    with torch.no_grad():
        assert float((reloaded(ids) - hf(ids).logits).abs().max()) <= 1e-4


@pytest.mark.parametrize(
    "quant",
    [QuantConfig(method="int8"), QuantConfig(method="rtn", bits=4, group_size=32)],
    ids=["int8", "int4"],
)
def test_trained_qwen3_5_passes_the_gate(
    quant: QuantConfig, qwen3_5_folder: Path, tmp_path: Path
) -> None:
    result = export(qwen3_5_folder, tmp_path / "bundle", quant=quant)
    accuracy = result.accuracy
    print(f"{quant.label}: {accuracy}")
    assert accuracy is not None and accuracy.gate == "passed", accuracy
    assert result.bundle.config.architecture == "qwen3_5" and result.parity.worst <= 1e-4
    assert result.bundle.manifest["onnxruntime"]["fused_graph"]  # the batched CPU graph too
    assert accuracy.perplexity_float < 20  # it learned the stories: the gate means something
