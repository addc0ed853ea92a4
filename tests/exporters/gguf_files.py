"""Tiny GGUF files written in the test session the way llama.cpp's convert_hf_to_gguf.py does.

A random transformers model (as in :mod:`tests.exporters.hf_models`) is written with
``gguf.GGUFWriter``: llama.cpp's tensor names, Llama q/k rows permuted for its interleaved RoPE,
Llama 3 RoPE scaling baked into ``rope_freqs.weight``, a byte-level BPE vocabulary with control
and user-defined tokens, and each weight in the quantization type a plan gives it. A Qwen3.5
(``qwen3_5``, llama.cpp's ``qwen35``) goes through :func:`gguf_qwen35_tensors`, the transforms of
llama.cpp's ``Qwen3_5TextModel`` converter.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tests.exporters.hf_models import FAMILIES

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
VOCAB_SIZE = 2048
# Weight types per tensor kind: F32 everywhere, or a mix like a real llama.cpp file.
PLANS: dict[str, dict[str, str]] = {
    "F32": {},
    "mixed": {
        "token_embd": "Q8_0",
        "attn_q": "Q4_0",
        "attn_k": "Q4_0",
        "attn_v": "Q4_1",
        "attn_output": "Q4_1",
        "ffn_gate": "BF16",
        "ffn_up": "F16",
        "ffn_down": "Q8_0",
        "output": "F16",
    },
}
_NAMES = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
    "self_attn.q_norm": "attn_q_norm",
    "self_attn.k_norm": "attn_k_norm",
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
}
# Gemma 3: a norm before and after attention and the MLP (llama.cpp's names)
_GEMMA3_NAMES = _NAMES | {
    "post_attention_layernorm": "post_attention_norm",
    "pre_feedforward_layernorm": "ffn_norm",
    "post_feedforward_layernorm": "post_ffw_norm",
}


#: The SDK's family -> llama.cpp's architecture name, where they differ.
_GGUF_ARCH = {"qwen3_5": "qwen35"}


def tiny_hf_model(family: str, rope_scaling: bool = True, seed: int = 0) -> Any:
    """A 2-layer random transformers model of ``family`` (hidden 64, 4 heads, 2 kv heads)."""
    import transformers

    spec = FAMILIES[family]
    extra = {k: v for k, v in spec["extra"].items() if rope_scaling or k != "rope_scaling"}
    config = getattr(transformers, spec["config"])(
        vocab_size=VOCAB_SIZE,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        rms_norm_eps=1e-6,
        eos_token_id=0,
        bos_token_id=0,
        **extra,
    )
    torch.manual_seed(seed)
    model = getattr(transformers, spec["cls"])(config).eval()
    with torch.no_grad():  # less flat logits than the default init, so parity means something
        for name, param in model.named_parameters():
            if param.dim() == 2:
                param.normal_(0, 0.08)
            elif "norm" in name:
                param.uniform_(0.5, 1.5)
            else:
                param.normal_(0, 0.05)
    return model


def gguf_vocabulary(tokenizer_json: str) -> tuple[list[str], list[int], list[str]]:
    """Tokens, token types and merges from a byte-level BPE tokenizer.json, padded to
    :data:`VOCAB_SIZE` as convert_hf_to_gguf pads (``[PADn]``, UNUSED), plus two control tokens
    and one user-defined token."""
    data = json.loads(tokenizer_json)
    by_id = {index: token for token, index in data["model"]["vocab"].items()}
    control = {a["content"] for a in data["added_tokens"] if a["special"]}
    tokens = [by_id.get(i, f"[PAD{i}]") for i in range(VOCAB_SIZE)]
    types = [3 if t in control else 1 if i in by_id else 5 for i, t in enumerate(tokens)]
    first_free = len(by_id)
    for offset, (text, kind) in enumerate((("<|im_start|>", 3), ("<|im_end|>", 3), ("<think>", 4))):
        tokens[first_free + offset], types[first_free + offset] = text, kind
    merges = [m if isinstance(m, str) else " ".join(m) for m in data["model"]["merges"]]
    return tokens, types, merges


def rope_factors(config: Any) -> np.ndarray | None:
    """``rope_freqs.weight`` as convert_hf_to_gguf computes it for Llama 3 scaling."""
    scaling = (
        getattr(config, "rope_scaling", None) or getattr(config, "rope_parameters", None) or {}
    )
    if scaling.get("rope_type") != "llama3":
        return None
    theta = scaling.get("rope_theta") or config.rope_theta
    dim = config.hidden_size // config.num_attention_heads
    factor, low, high = scaling["factor"], scaling["low_freq_factor"], scaling["high_freq_factor"]
    old = scaling["original_max_position_embeddings"]
    factors = []
    for freq in 1.0 / theta ** (np.arange(0, dim, 2, dtype=np.float64) / dim):
        wavelen = 2 * math.pi / freq
        if wavelen < old / high:
            factors.append(1.0)
        elif wavelen > old / low:
            factors.append(factor)
        else:
            smooth = (old / wavelen - low) / (high - low)
            factors.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(factors, dtype=np.float32)


def write_gguf(
    path: Path,
    model: Any,
    family: str,
    tokenizer_json: str,
    plan: str | Mapping[str, str] = "F32",
    *,
    arch: str | None = None,
    pre: str = "gpt-2",
    tokenizer_model: str | None = "gpt2",
    add_bos: bool = False,
    extra_tensors: Mapping[str, np.ndarray] | None = None,
    mtp_blocks: int = 0,
) -> Path:
    """Write ``model`` as a GGUF file. ``plan``: a name in :data:`PLANS` or {tensor kind: type};
    ``tokenizer_model=None`` leaves the tokenizer out; ``mtp_blocks`` (Qwen3.5) appends that many
    multi-token-prediction blocks of random tensors, as llama.cpp's converter appends the
    checkpoint's ``mtp.*``."""
    kinds = PLANS[plan] if isinstance(plan, str) else plan
    import gguf

    config = model.config
    writer = gguf.GGUFWriter(str(path), arch or _GGUF_ARCH.get(family, family))
    writer.add_name(f"tiny {family}")
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers + mtp_blocks)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    rope = getattr(config, "rope_parameters", None) or {}
    if family == "gemma3":  # one entry per layer type; llama.cpp writes both bases
        writer.add_float32("gemma3.rope.freq_base_swa", rope["sliding_attention"]["rope_theta"])
        rope = rope["full_attention"]
    writer.add_rope_freq_base(float(rope.get("rope_theta") or config.rope_theta))
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    writer.add_rope_dimension_count(int(head_dim * rope.get("partial_rotary_factor", 1.0)))
    if head_dim != config.hidden_size // config.num_attention_heads or family == "gemma3":
        writer.add_key_length(head_dim)  # as convert_hf_to_gguf
        writer.add_value_length(head_dim)
    if family == "gemma3":
        writer.add_sliding_window(config.sliding_window)
    if family == "qwen3_5":
        _add_qwen35_metadata(writer, config, mtp_blocks)
    if tokenizer_model is not None:
        tokens, types, merges = gguf_vocabulary(tokenizer_json)
        writer.add_tokenizer_model(tokenizer_model)
        writer.add_tokenizer_pre(pre)
        writer.add_token_list(tokens)
        writer.add_token_types(types)
        writer.add_token_merges(merges)
        writer.add_bos_token_id(0)
        writer.add_eos_token_id(0)
        writer.add_eot_token_id(tokens.index("<|im_end|>"))
        writer.add_add_bos_token(add_bos)
        writer.add_chat_template(CHATML)
    factors = rope_factors(config)
    if factors is not None:
        writer.add_tensor("rope_freqs.weight", factors)
    tensors = gguf_qwen35_tensors(model) if family == "qwen3_5" else gguf_tensors(model, family)
    for index in range(config.num_hidden_layers, config.num_hidden_layers + mtp_blocks):
        rng = np.random.default_rng(index)
        for kind, shape in (("attn_norm", (64,)), ("nextn.eh_proj", (64, 128))):
            tensors[f"blk.{index}.{kind}.weight"] = rng.normal(0, 1, shape).astype(np.float32)
    for name, tensor in tensors.items():
        kind = name.split(".")[-2]
        _add(writer, name, tensor, kinds.get(kind, "F32") if tensor.ndim == 2 else "F32")
    for name, tensor in (extra_tensors or {}).items():
        writer.add_tensor(name, tensor)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def gguf_tensors(model: Any, family: str) -> dict[str, np.ndarray]:
    """The model's tensors under llama.cpp's names, q/k permuted for a Llama, Gemma's norm
    weights stored as the ``1 + w`` they scale by."""
    config = model.config
    names = _GEMMA3_NAMES if family == "gemma3" else _NAMES
    out: dict[str, np.ndarray] = {}
    for name, param in model.state_dict().items():
        array = param.detach().float().numpy()
        if name == "lm_head.weight" and config.tie_word_embeddings:
            continue
        if family == "gemma3" and name.endswith("norm.weight"):
            array = array + 1
        if name.startswith("model.layers."):
            _, _, index, rest = name.split(".", 3)
            module, leaf = rest.rsplit(".", 1)
            if family == "llama" and module in ("self_attn.q_proj", "self_attn.k_proj"):
                heads = (
                    config.num_attention_heads if "q_proj" in module else config.num_key_value_heads
                )
                array = permute(array, heads)
            out[f"blk.{index}.{names[module]}.{leaf}"] = array
        else:
            out[
                {
                    "model.embed_tokens.weight": "token_embd.weight",
                    "model.norm.weight": "output_norm.weight",
                    "lm_head.weight": "output.weight",
                }[name]
            ] = array
    return out


def _add_qwen35_metadata(writer: Any, config: Any, mtp_blocks: int) -> None:
    """The keys llama.cpp's ``Qwen3NextModel`` / ``Qwen3_5TextModel`` converter adds."""
    hidden = config.to_dict()
    writer.add_ssm_conv_kernel(config.linear_conv_kernel_dim)
    writer.add_ssm_state_size(config.linear_key_head_dim)
    writer.add_ssm_group_count(config.linear_num_key_heads)
    writer.add_ssm_time_step_rank(config.linear_num_value_heads)
    writer.add_ssm_inner_size(config.linear_value_head_dim * config.linear_num_value_heads)
    writer.add_full_attention_interval(hidden.get("full_attention_interval", 4))
    writer.add_rope_dimension_sections([11, 11, 10, 0])  # its default; text uses none of it
    if mtp_blocks:
        writer.add_nextn_predict_layers(mtp_blocks)


def gguf_qwen35_tensors(model: Any) -> dict[str, np.ndarray]:
    """A transformers Qwen3.5's tensors as llama.cpp's converter writes them: named by gguf-py's
    own ``TensorNameMap`` for ``qwen35``; value heads reordered from grouped (per key head) to
    tiled when there are more value than key heads; ``A_log`` as ``-exp(A_log)``, ``dt_bias``
    as ``ssm_dt.bias``, the conv kernel squeezed, RMSNorm weights but the mixer's gated norm
    as ``1 + w``."""
    import gguf

    config = model.config
    hk, hv = config.linear_num_key_heads, config.linear_num_value_heads
    dv, qk_rows = config.linear_value_head_dim, 2 * hk * config.linear_key_head_dim
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.QWEN35, config.num_hidden_layers)

    def tiled(array: np.ndarray, axis: int, width: int) -> np.ndarray:
        shape = array.shape
        grouped = array.reshape(*shape[:axis], hk, hv // hk, width, *shape[axis + 1 :])
        return np.swapaxes(grouped, axis, axis + 1).reshape(shape)

    out: dict[str, np.ndarray] = {}
    for name, param in model.state_dict().items():
        array = param.detach().float().numpy()
        if name == "lm_head.weight" and config.tie_word_embeddings:
            continue
        leaf = name.rsplit("linear_attn.", 1)[-1]
        if ".linear_attn." in name and hk != hv:
            if leaf in ("in_proj_qkv.weight", "conv1d.weight"):
                array = np.concatenate([array[:qk_rows], tiled(array[qk_rows:], 0, dv)])
            elif leaf == "in_proj_z.weight":
                array = tiled(array, 0, dv)
            elif leaf in ("in_proj_a.weight", "in_proj_b.weight", "A_log", "dt_bias"):
                array = tiled(array, 0, 1)
            elif leaf == "out_proj.weight":
                array = tiled(array, 1, dv)
        if leaf == "A_log":
            array = -np.exp(array)
        elif leaf == "dt_bias":
            name = name.replace(".dt_bias", ".dt_proj.bias")
        elif leaf == "conv1d.weight":
            array = array.squeeze()
        elif name.endswith("norm.weight") and leaf != "norm.weight":
            array = array + 1
        gguf_name = names.get_name(name, try_suffixes=(".weight", ".bias"))
        assert gguf_name is not None, f"gguf-py has no qwen35 name for {name}"
        out[gguf_name] = np.ascontiguousarray(array, dtype=np.float32)
    return out


def permute(weights: np.ndarray, heads: int) -> np.ndarray:
    """convert_hf_to_gguf's ``LlamaModel.permute``."""
    return (
        weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def _add(writer: Any, name: str, tensor: np.ndarray, kind: str) -> None:
    import gguf

    qtype = gguf.GGMLQuantizationType[kind]
    plain = {"F32": np.float32, "F64": np.float64}
    if kind in plain:
        writer.add_tensor(name, np.ascontiguousarray(tensor, dtype=plain[kind]))
    else:
        writer.add_tensor(
            name, gguf.quants.quantize(np.ascontiguousarray(tensor), qtype), raw_dtype=qtype
        )
