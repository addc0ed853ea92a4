"""Random-initialised Hugging Face models of each supported family, saved as real folders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

FAMILIES: dict[str, dict[str, Any]] = {
    "llama": {
        "cls": "LlamaForCausalLM",
        "config": "LlamaConfig",
        "extra": {
            "rope_scaling": {
                "rope_type": "llama3",
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 64,
            },
            "rope_theta": 500000.0,
            "tie_word_embeddings": False,
        },
    },
    "qwen2": {
        "cls": "Qwen2ForCausalLM",
        "config": "Qwen2Config",
        "extra": {"tie_word_embeddings": True, "rope_theta": 1000000.0},
    },
    "mistral": {
        "cls": "MistralForCausalLM",
        "config": "MistralConfig",
        "extra": {"sliding_window": 6, "tie_word_embeddings": False},
    },
    "qwen3": {  # head_dim 32 x 4 heads: q_size (128) != hidden_size (64)
        "cls": "Qwen3ForCausalLM",
        "config": "Qwen3Config",
        "extra": {"head_dim": 32, "tie_word_embeddings": False, "rope_theta": 1000000.0},
    },
    "gemma3": {  # a 3-position window on layer 0 (its own RoPE base), layer 1 global
        "cls": "Gemma3ForCausalLM",
        "config": "Gemma3TextConfig",
        "extra": {
            "head_dim": 32,
            "query_pre_attn_scalar": 24,
            "sliding_window": 3,
            "layer_types": ["sliding_attention", "full_attention"],
            "tie_word_embeddings": True,
        },
    },
    "qwen3_5": {  # a Gated DeltaNet layer, then a gated attention layer (rotary on 16 of 64)
        "cls": "Qwen3_5ForCausalLM",
        "config": "Qwen3_5TextConfig",
        "extra": {
            "head_dim": 64,
            "layer_types": ["linear_attention", "full_attention"],
            "linear_num_key_heads": 2,
            "linear_num_value_heads": 4,
            "linear_key_head_dim": 16,
            "linear_value_head_dim": 16,
            "linear_conv_kernel_dim": 4,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 1000000.0,
                "partial_rotary_factor": 0.25,
            },
            "tie_word_embeddings": True,
        },
    },
}

#: Norms that scale by 1 + w (Qwen3.5's gated norm inside the mixer scales by w).
_ONE_PLUS_W = {
    "gemma3": ("norm.weight",),
    "qwen3_5": ("layernorm.weight", "q_norm.weight", "k_norm.weight", "model.norm.weight"),
}

#: Families whose whole model ``load_model`` builds (Gemma 3's reference is layer-wise only).
WHOLE_MODEL = ("llama", "mistral", "qwen2", "qwen3")


def make_hf_folder(
    family: str, folder: Path, tokenizer_json: str, vocab_size: int, seed: int = 0
) -> Any:
    """Save a tiny random model of ``family`` with safetensors and tokenizer.json; return it."""
    import transformers

    spec = FAMILIES[family]
    config = getattr(transformers, spec["config"])(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        rms_norm_eps=1e-6,
        eos_token_id=0,
        bos_token_id=0,
        **spec["extra"],
    )
    torch.manual_seed(seed)
    model = getattr(transformers, spec["cls"])(config).eval()
    with torch.no_grad():  # make logits less flat than the default init so parity is meaningful
        for name, param in model.named_parameters():
            if name.endswith(_ONE_PLUS_W.get(family, ())):  # norms that scale by 1 + w
                param.normal_(0, 0.2)
            elif name.endswith(("q_norm.weight", "k_norm.weight")):  # Qwen3's: not all ones
                param.normal_(1, 0.2)
            elif param.dim() == 2:
                param.normal_(0, 0.08)
            elif param.dim() == 1 and "norm" not in name:
                param.normal_(0, 0.05)
    model.save_pretrained(folder, safe_serialization=True)
    (folder / "tokenizer.json").write_text(tokenizer_json, encoding="utf-8")
    return model
