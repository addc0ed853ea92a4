"""Random-weight Hugging Face model folders of real model shapes, written in bounded memory.

    from random_models import SHAPES, write_random_hf_folder
    write_random_hf_folder(Path("/tmp/qwen-1.5b"), "qwen2.5-1.5b")            # 3.1 GB, bf16
    write_random_hf_folder(Path("/tmp/llama-2l"), "llama-3.2-1b", num_layers=2)

A folder holds the model's real ``config.json`` values, ``model.safetensors`` with random weights
under Hugging Face's tensor names (normal * 0.02; norms 1; Qwen2's q/k/v biases small random) and
the packaged demo model's ``tokenizer.json`` (a 2048-token vocabulary: smaller than the model's,
which is fine for export speed and memory). The safetensors file is streamed: its header (every
name, dtype, shape and offset) is computed and written first, then each tensor is generated and
written in row blocks, so a 6 GB file costs one block of RAM.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "SHAPES",
    "TensorSpec",
    "hf_config",
    "safetensors_header",
    "tensor_specs",
    "write_random_hf_folder",
]

# config.json of each model on the Hugging Face hub (the values that shape the weights, plus the
# ones a loader reads).
SHAPES: dict[str, dict[str, Any]] = {
    # Qwen/Qwen2.5-0.5B: 494 M parameters
    "qwen2.5-0.5b": {
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "attention_dropout": 0.0,
        "bos_token_id": 151643,
        "eos_token_id": 151643,
        "hidden_act": "silu",
        "hidden_size": 896,
        "initializer_range": 0.02,
        "intermediate_size": 4864,
        "max_position_embeddings": 32768,
        "max_window_layers": 24,
        "num_attention_heads": 14,
        "num_hidden_layers": 24,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0,
        "sliding_window": 32768,
        "tie_word_embeddings": True,
        "torch_dtype": "bfloat16",
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": 151936,
    },
    # meta-llama/Llama-3.2-1B: 1.24 B parameters
    "llama-3.2-1b": {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 128000,
        "eos_token_id": 128001,
        "head_dim": 64,
        "hidden_act": "silu",
        "hidden_size": 2048,
        "initializer_range": 0.02,
        "intermediate_size": 8192,
        "max_position_embeddings": 131072,
        "mlp_bias": False,
        "num_attention_heads": 32,
        "num_hidden_layers": 16,
        "num_key_value_heads": 8,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-5,
        "rope_scaling": {
            "factor": 32.0,
            "high_freq_factor": 4.0,
            "low_freq_factor": 1.0,
            "original_max_position_embeddings": 8192,
            "rope_type": "llama3",
        },
        "rope_theta": 500000.0,
        "tie_word_embeddings": True,
        "torch_dtype": "bfloat16",
        "use_cache": True,
        "vocab_size": 128256,
    },
    # Qwen/Qwen2.5-1.5B: 1.54 B parameters
    "qwen2.5-1.5b": {
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "attention_dropout": 0.0,
        "bos_token_id": 151643,
        "eos_token_id": 151643,
        "hidden_act": "silu",
        "hidden_size": 1536,
        "initializer_range": 0.02,
        "intermediate_size": 8960,
        "max_position_embeddings": 131072,
        "max_window_layers": 28,
        "num_attention_heads": 12,
        "num_hidden_layers": 28,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0,
        "sliding_window": 131072,
        "tie_word_embeddings": True,
        "torch_dtype": "bfloat16",
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": 151936,
    },
}

# Qwen/Qwen3-0.6B: 596 M parameters (q/k RMSNorm per head, head_dim 128, tied head)
SHAPES["qwen3-0.6b"] = {
    "architectures": ["Qwen3ForCausalLM"],
    "model_type": "qwen3",
    "attention_bias": False,
    "bos_token_id": 151643,
    "eos_token_id": 151645,
    "head_dim": 128,
    "hidden_act": "silu",
    "hidden_size": 1024,
    "intermediate_size": 3072,
    "max_position_embeddings": 40960,
    "num_attention_heads": 16,
    "num_hidden_layers": 28,
    "num_key_value_heads": 8,
    "rms_norm_eps": 1e-6,
    "rope_theta": 1000000,
    "sliding_window": None,
    "tie_word_embeddings": True,
    "torch_dtype": "bfloat16",
    "use_sliding_window": False,
    "vocab_size": 151936,
}

# Qwen/Qwen3.5-0.8B's text decoder (text_config of its config.json): 18 Gated DeltaNet layers and
# 6 gated attention layers (every fourth), vocab 248320, tied head.
SHAPES["qwen3.5-0.8b"] = {
    "architectures": ["Qwen3_5ForCausalLM"],
    "model_type": "qwen3_5_text",
    "attention_bias": False,
    "bos_token_id": 248044,
    "eos_token_id": 248044,
    "head_dim": 256,
    "hidden_act": "silu",
    "hidden_size": 1024,
    "intermediate_size": 3584,
    "layer_types": [
        "full_attention" if (i + 1) % 4 == 0 else "linear_attention" for i in range(24)
    ],
    "linear_conv_kernel_dim": 4,
    "linear_key_head_dim": 128,
    "linear_num_key_heads": 16,
    "linear_num_value_heads": 16,
    "linear_value_head_dim": 128,
    "max_position_embeddings": 262144,
    "num_attention_heads": 8,
    "num_hidden_layers": 24,
    "num_key_value_heads": 2,
    "rms_norm_eps": 1e-6,
    "rope_parameters": {
        "rope_type": "default",
        "rope_theta": 10000000,
        "partial_rotary_factor": 0.25,
    },
    "tie_word_embeddings": True,
    "torch_dtype": "bfloat16",
    "vocab_size": 248320,
}
# A Qwen3 of Qwen3.5-0.8B's hidden size, layer count, heads and MLP, every layer attention: the
# baseline its prefill and decode are compared with (benchmarks/bench_hybrid.py).
SHAPES["qwen3-as-qwen3.5-0.8b"] = {
    **SHAPES["qwen3-0.6b"],
    "head_dim": 256,
    "hidden_size": 1024,
    "intermediate_size": 3584,
    "num_attention_heads": 8,
    "num_hidden_layers": 24,
    "num_key_value_heads": 2,
    "vocab_size": 248320,
}

_DTYPES: dict[str, tuple[torch.dtype, str]] = {  # name -> (torch dtype, safetensors dtype)
    "bfloat16": (torch.bfloat16, "BF16"),
    "float16": (torch.float16, "F16"),
    "float32": (torch.float32, "F32"),
}
_BLOCK_ELEMENTS = 8 * 1024 * 1024  # rows generated at a time: 32 MB of float32 at most
_WEIGHT_STD = 0.02
_BIAS_STD = 0.01

TensorSpec = tuple[str, tuple[int, ...], str]  # (name, shape, kind: "weight" | "norm" | "bias")


def hf_config(shape: str | dict[str, Any], num_layers: int | None = None) -> dict[str, Any]:
    """The config.json dict of ``shape`` (a :data:`SHAPES` name or a config dict), cut to
    ``num_layers`` layers when given."""
    if isinstance(shape, str) and shape not in SHAPES:
        raise KeyError(f"unknown shape {shape!r}; choose from {sorted(SHAPES)}")
    config: dict[str, Any] = copy.deepcopy(SHAPES[shape] if isinstance(shape, str) else shape)
    if num_layers is not None:
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        config["num_hidden_layers"] = num_layers
        if "max_window_layers" in config:
            config["max_window_layers"] = min(int(config["max_window_layers"]), num_layers)
        if config.get("layer_types"):  # a hybrid model's kinds of layer, one per layer
            config["layer_types"] = config["layer_types"][:num_layers]
    return config


def _is_qwen2(config: dict[str, Any]) -> bool:
    return "Qwen2ForCausalLM" in (config.get("architectures") or []) or (
        config.get("model_type") == "qwen2"
    )


def tensor_specs(config: dict[str, Any]) -> list[TensorSpec]:
    """Every tensor of the model under Hugging Face's names, in file order."""
    hidden = int(config["hidden_size"])
    inter = int(config["intermediate_size"])
    vocab = int(config["vocab_size"])
    types = config.get("layer_types") or []
    specs: list[TensorSpec] = [("model.embed_tokens.weight", (vocab, hidden), "weight")]
    for i in range(int(config["num_hidden_layers"])):
        p = f"model.layers.{i}"
        specs.append((f"{p}.input_layernorm.weight", (hidden,), "norm"))
        if i < len(types) and types[i] == "linear_attention":
            specs += _linear_attention_specs(config, f"{p}.linear_attn")
        else:
            specs += _attention_specs(config, f"{p}.self_attn")
        specs.append((f"{p}.post_attention_layernorm.weight", (hidden,), "norm"))
        specs.append((f"{p}.mlp.gate_proj.weight", (inter, hidden), "weight"))
        specs.append((f"{p}.mlp.up_proj.weight", (inter, hidden), "weight"))
        specs.append((f"{p}.mlp.down_proj.weight", (hidden, inter), "weight"))
    specs.append(("model.norm.weight", (hidden,), "norm"))
    if not config.get("tie_word_embeddings", False):
        specs.append(("lm_head.weight", (vocab, hidden), "weight"))
    return specs


def _attention_specs(config: dict[str, Any], p: str) -> list[TensorSpec]:
    """q/k/v/o (q twice as wide with Qwen3.5's output gate), biases, per-head q/k norms."""
    hidden = int(config["hidden_size"])
    heads = int(config["num_attention_heads"])
    kv_heads = int(config.get("num_key_value_heads") or heads)
    head_dim = int(config.get("head_dim") or hidden // heads)
    qkv_bias = _is_qwen2(config) or bool(config.get("attention_bias", False))
    gated = config.get("model_type") == "qwen3_5_text"
    specs: list[TensorSpec] = []
    for proj, rows in (("q", heads * (2 if gated else 1)), ("k", kv_heads), ("v", kv_heads)):
        specs.append((f"{p}.{proj}_proj.weight", (rows * head_dim, hidden), "weight"))
        if qkv_bias:
            specs.append((f"{p}.{proj}_proj.bias", (rows * head_dim,), "bias"))
    if config.get("model_type") in ("qwen3", "qwen3_5_text"):  # per-head q/k norms
        specs += [(f"{p}.{n}_norm.weight", (head_dim,), "norm") for n in "qk"]
    specs.append((f"{p}.o_proj.weight", (hidden, heads * head_dim), "weight"))
    return specs


def _linear_attention_specs(config: dict[str, Any], p: str) -> list[TensorSpec]:
    """Qwen3.5's Gated DeltaNet mixer (the decay parameters and the conv kernel as "norm"s: 1)."""
    hidden = int(config["hidden_size"])
    hk, hv = int(config["linear_num_key_heads"]), int(config["linear_num_value_heads"])
    dk, dv = int(config["linear_key_head_dim"]), int(config["linear_value_head_dim"])
    conv = 2 * hk * dk + hv * dv
    return [
        (f"{p}.in_proj_qkv.weight", (conv, hidden), "weight"),
        (f"{p}.in_proj_z.weight", (hv * dv, hidden), "weight"),
        (f"{p}.in_proj_b.weight", (hv, hidden), "weight"),
        (f"{p}.in_proj_a.weight", (hv, hidden), "weight"),
        (f"{p}.conv1d.weight", (conv, 1, int(config["linear_conv_kernel_dim"])), "weight"),
        (f"{p}.dt_bias", (hv,), "norm"),
        (f"{p}.A_log", (hv,), "norm"),
        (f"{p}.norm.weight", (dv,), "norm"),
        (f"{p}.out_proj.weight", (hidden, hv * dv), "weight"),
    ]


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def safetensors_header(specs: list[TensorSpec], dtype: str) -> tuple[bytes, int]:
    """The file's first bytes (8-byte little-endian length + JSON, space-padded to a multiple
    of 8) and the byte count of the data after them."""
    st_dtype = _DTYPES[dtype][1]
    itemsize = torch.empty((), dtype=_DTYPES[dtype][0]).element_size()
    entries: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape, _ in specs:
        size = _numel(shape) * itemsize
        entries[name] = {
            "dtype": st_dtype,
            "shape": list(shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    text = json.dumps(entries, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text, offset


def _blocks(
    shape: tuple[int, ...], kind: str, dtype: torch.dtype, generator: torch.Generator
) -> Iterator[torch.Tensor]:
    """The tensor's values, a block of whole rows at a time."""
    if kind == "norm":
        yield torch.ones(shape, dtype=dtype)
        return
    std = _BIAS_STD if kind == "bias" else _WEIGHT_STD
    row = _numel(shape[1:])
    rows_per_block = max(1, _BLOCK_ELEMENTS // max(row, 1))
    for start in range(0, shape[0], rows_per_block):
        rows = min(rows_per_block, shape[0] - start)
        # No name holds the float32 block while the caller writes the converted one.
        yield torch.randn((rows, *shape[1:]), generator=generator).mul_(std).to(dtype)


def write_random_hf_folder(
    folder: Path,
    shape: str | dict[str, Any],
    *,
    num_layers: int | None = None,
    dtype: str = "bfloat16",
    seed: int = 0,
) -> Path:
    """Write config.json, tokenizer.json and a streamed random model.safetensors into
    ``folder``; returns ``folder``. ``shape`` is a :data:`SHAPES` name or a config.json dict."""
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
    config = hf_config(shape, num_layers)
    config["torch_dtype"] = dtype
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    (folder / "tokenizer.json").write_text(demo_tokenizer_json(), encoding="utf-8")
    specs = tensor_specs(config)
    header, data_bytes = safetensors_header(specs, dtype)
    torch_dtype = _DTYPES[dtype][0]
    generator = torch.Generator().manual_seed(seed)
    target = folder / "model.safetensors"
    partial = folder / "model.safetensors.partial"
    with open(partial, "wb") as out:
        out.write(header)
        for _, tensor_shape, kind in specs:
            for block in _blocks(tensor_shape, kind, torch_dtype, generator):
                out.write(block.contiguous().view(torch.uint8).numpy().data)
                del block  # freed before the next one is generated
    written = partial.stat().st_size
    if written != len(header) + data_bytes:
        raise RuntimeError(f"{partial}: wrote {written} bytes, expected {len(header) + data_bytes}")
    os.replace(partial, target)
    return folder


def demo_tokenizer_json() -> str:
    """The packaged demo model's tokenizer.json text (read without importing the exporters)."""
    from edge_sdk.checkpoint import read_checkpoint_metadata

    spec = importlib.util.find_spec("edge_sdk.exporters")  # the package, not executed
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("edge_sdk.exporters is not installed: pip install -e '.[export]'")
    checkpoint = Path(next(iter(spec.submodule_search_locations))) / "demo" / "model.pt"
    text = read_checkpoint_metadata(checkpoint)["tokenizer"]
    assert isinstance(text, str)
    return text
