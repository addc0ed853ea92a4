"""Open a llama.cpp GGUF file (Llama, Qwen2, Qwen3, Gemma 3 and Qwen3.5 architectures) as a
:class:`ModelSource`, or load it as a float32 :class:`LoadedModel`.

The metadata becomes a :class:`ModelConfig`, and the tokenizer and chat template are rebuilt from
``tokenizer.*`` (:mod:`.tokenizer`). The tensors are dequantized to float32 with the ``gguf``
library (llama.cpp's own) one at a time, in the Hugging Face names and layout of the reference
model (:mod:`edge_sdk.exporters.weights.gguf_file`). A file whose tensor data runs past its end
is refused when it is opened, naming the first tensor cut.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from edge_sdk._optional import require
from edge_sdk.config import ModelConfig, RopeScaling
from edge_sdk.errors import ConfigError, UnsupportedModelError
from edge_sdk.exporters.checkpoint import LoadedModel, load_source
from edge_sdk.exporters.gguf.qwen35 import qwen35_fields
from edge_sdk.exporters.gguf.rope import rope_scaling_from_factors
from edge_sdk.exporters.gguf.tokenizer import gguf_chat_template, gguf_tokenizer_json
from edge_sdk.exporters.sources import ModelSource
from edge_sdk.exporters.weights.gguf_file import ROPE_FREQS, GgufWeights, dequantized, first_line

__all__ = [
    "SUPPORTED_GGUF_ARCHITECTURES",
    "dequantized",
    "gguf_config",
    "load_gguf",
    "open_gguf",
    "read_gguf",
]

#: ``general.architecture`` values this SDK reads.
SUPPORTED_GGUF_ARCHITECTURES = ("llama", "qwen2", "qwen3", "gemma3", "qwen35")
#: llama.cpp's architecture name -> the SDK's model family, where the two differ.
_FAMILIES = {"qwen35": "qwen3_5"}


def load_gguf(path: str | os.PathLike[str]) -> LoadedModel:
    """Read a GGUF file of a supported architecture into a float32 model in eval mode."""
    return load_source(open_gguf(path))


def open_gguf(path: str | os.PathLike[str]) -> ModelSource:
    """Open a GGUF file of a supported architecture: config, tokenizer and chat template read from
    its metadata, each tensor dequantized only when it is read."""
    path = Path(path)
    metadata, tensors = read_gguf(path)
    try:
        _architecture(metadata)  # before the tokenizer: an unsupported model says so first
    except UnsupportedModelError as exc:
        raise UnsupportedModelError(f"{path}: {exc}") from exc
    tokenizer_json = gguf_tokenizer_json(metadata)
    rope_freqs = [tensor for tensor in tensors if tensor.name == ROPE_FREQS]
    factors = dequantized(rope_freqs[0]) if rope_freqs else None
    config = gguf_config(metadata, {t.name for t in tensors if t.name != ROPE_FREQS}, factors)
    weights = GgufWeights(_decoder_tensors(tensors, metadata, config.num_layers), config)
    name = str(metadata.get("general.name") or path.stem)
    return ModelSource(
        config, weights, tokenizer_json, str(path), name, gguf_chat_template(metadata)
    )


def read_gguf(path: Path) -> tuple[dict[str, Any], list[Any]]:
    """The metadata as plain Python values and the tensor records (``gguf.ReaderTensor``)."""
    gguf = require("gguf", "reading GGUF files")
    try:
        reader = _checked_reader()(str(path))
        metadata = {
            name: _field_value(field, gguf.GGUFValueType) for name, field in reader.fields.items()
        }
    except FileNotFoundError as exc:
        raise ConfigError(f"{path} does not exist") from exc
    except (ValueError, OSError, IndexError, KeyError, struct.error, UnicodeDecodeError) as exc:
        raise UnsupportedModelError(
            f"{path} cannot be read as a GGUF file ({first_line(exc)}): it is not GGUF, or it "
            "is truncated or corrupt; download or convert it again"
        ) from exc
    return metadata, list(reader.tensors)


def gguf_config(
    metadata: Mapping[str, Any], tensor_names: set[str], rope_factors: np.ndarray | None = None
) -> ModelConfig:
    """The :class:`ModelConfig` a GGUF's metadata (and its tensor names) describe."""
    arch = _architecture(metadata)

    def key(name: str, default: Any = ..., per_layer: bool = False) -> Any:
        value = metadata.get(f"{arch}.{name}", default)
        if value is ...:
            raise ConfigError(f"the GGUF metadata lacks {arch}.{name}")
        return value if per_layer else _one_value(f"{arch}.{name}", value)

    heads, hidden = int(key("attention.head_count")), int(key("embedding_length"))
    # Qwen3.5: llama.cpp appends its multi-token-prediction block(s) to block_count
    layers = int(key("block_count")) - int(key("nextn_predict_layers", 0))
    if arch == "qwen35":  # partial RoPE: rope.dimension_count is the share of a head it rotates
        head_dim = int(key("attention.key_length", 0) or hidden // heads)
        same_width: tuple[str, ...] = ("attention.value_length",)
    else:
        head_dim = int(
            key("attention.key_length", 0) or key("rope.dimension_count", 0) or hidden // heads
        )
        same_width = ("rope.dimension_count", "attention.value_length")
    for other in same_width:
        if int(key(other, head_dim)) != head_dim:
            raise UnsupportedModelError(
                f"{arch}.{other} = {key(other)} differs from the head size {head_dim}; partial "
                "rotary embeddings and uneven key/value heads are not supported"
            )
    theta = float(key("rope.freq_base", 10000.0))
    tokens = metadata.get("tokenizer.ggml.tokens") or []
    eos = [metadata.get(f"tokenizer.ggml.{k}_token_id") for k in ("eos", "eot", "eom")]
    try:
        return ModelConfig(
            architecture=_FAMILIES.get(arch, arch),
            vocab_size=int(key("vocab_size", 0) or len(tokens)),
            hidden_size=hidden,
            num_layers=layers,
            num_heads=heads,
            num_kv_heads=int(key("attention.head_count_kv", heads)),
            head_dim=head_dim,
            intermediate_size=int(key("feed_forward_length")),
            rope_theta=theta,
            rope_scaling=_rope_scaling(key, rope_factors, theta, head_dim),
            rms_norm_eps=float(key("attention.layer_norm_rms_epsilon", 1e-5)),
            max_position_embeddings=int(key("context_length", 2048)),
            tie_word_embeddings="output.weight" not in tensor_names,
            qkv_bias="blk.0.attn_q.bias" in tensor_names,
            bos_token_id=metadata.get("tokenizer.ggml.bos_token_id"),
            eos_token_ids=tuple(dict.fromkeys(int(i) for i in eos if i is not None)),
            **(_gemma3_fields(key, head_dim) if arch == "gemma3" else {}),
            **(qwen35_fields(key, layers, head_dim) if arch == "qwen35" else {}),
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"the GGUF metadata has an invalid value: {exc}") from exc


def _gemma3_fields(key: Any, head_dim: int) -> dict[str, Any]:
    """Gemma 3's layer pattern, local RoPE base and attention scale. llama.cpp writes the window
    only; like its loader, this takes every sixth layer as global, the sliding layers' base as
    10000 unless the file says, and scales the scores by 1/sqrt(head_dim) (Gemma 3's
    ``query_pre_attn_scalar`` is the head size up to 12B)."""
    layers = int(key("block_count"))
    return {
        "sliding_window": int(key("attention.sliding_window")),
        "layer_types": tuple(
            "full_attention" if (i + 1) % 6 == 0 else "sliding_attention" for i in range(layers)
        ),
        "rope_local_theta": float(key("rope.freq_base_swa", 10000.0)),
        "query_pre_attn_scalar": float(head_dim),
    }


def _decoder_tensors(tensors: list[Any], metadata: Mapping[str, Any], num_layers: int) -> list[Any]:
    """The tensors of the decoder: without those of the multi-token-prediction blocks that
    llama.cpp appends to Qwen3.5's (``nextn_predict_layers`` of them, after ``num_layers``)."""
    if not metadata.get(f"{metadata.get('general.architecture')}.nextn_predict_layers"):
        return tensors
    return [tensor for tensor in tensors if _block(tensor.name) < num_layers]


def _block(name: str) -> int:
    """The layer index of a ``blk.{i}.*`` tensor name, -1 for the others."""
    parts = name.split(".", 2)
    return int(parts[1]) if len(parts) > 1 and parts[0] == "blk" and parts[1].isdigit() else -1


def _architecture(metadata: Mapping[str, Any]) -> str:
    arch = metadata.get("general.architecture")
    if arch not in SUPPORTED_GGUF_ARCHITECTURES:
        raise UnsupportedModelError(
            f"GGUF architecture {arch or '(none given)'!r} is not supported; supported: "
            f"{', '.join(SUPPORTED_GGUF_ARCHITECTURES)}"
        )
    return str(arch)


def _rope_scaling(
    key: Any, factors: np.ndarray | None, theta: float, head_dim: int
) -> RopeScaling | None:
    kind = str(key("rope.scaling.type", "none"))
    # both keys hold the divisor of the positions (llama.cpp's 1 / freq_scale)
    linear = float(key("rope.scaling.factor", 0) or key("rope.scale_linear", 0) or 1.0)
    if kind not in ("none", "linear", "llama3") or (kind == "llama3" and factors is None):
        raise UnsupportedModelError(
            f"GGUF RoPE scaling {kind!r} is not supported; supported: "
            "linear, and llama3 (stored as a rope_freqs tensor)"
        )
    if factors is not None:
        if kind == "linear" and linear != 1.0:
            raise UnsupportedModelError(
                "the GGUF combines linear RoPE scaling with rope_freqs; "
                "only one of them is supported"
            )
        original = key("rope.scaling.original_context_length", None)
        return rope_scaling_from_factors(
            factors, theta, head_dim, int(original) if original else None
        )
    if kind == "linear" and linear != 1.0:
        return RopeScaling(kind="linear", factor=linear)
    return None


def _one_value(name: str, value: Any) -> Any:
    """A per-layer array whose entries all agree, as one value (other arrays are refused)."""
    if not isinstance(value, list):
        return value
    if value and all(v == value[0] for v in value):
        return value[0]
    raise UnsupportedModelError(
        f"{name} differs between layers ({value[:4]}...); layers of "
        "different shapes are not supported"
    )


def _field_value(field: Any, value_type: Any) -> Any:
    """One metadata field as a Python value (str, int, float, bool or a list of them)."""
    kind = field.types[0]
    if kind == value_type.ARRAY:
        item = field.types[-1] if len(field.types) > 1 else None
        if item == value_type.STRING:
            return [bytes(field.parts[i]).decode("utf-8") for i in field.data]
        if item == value_type.ARRAY or not field.data:
            return []
        return np.concatenate([field.parts[i] for i in field.data]).tolist()
    if kind == value_type.STRING:
        return bytes(field.parts[field.data[0]]).decode("utf-8")
    value = field.parts[field.data[0]][0]
    if kind == value_type.FLOAT32:  # its shortest decimal: 1e-05, not 9.999999747378752e-06
        return float(str(value))
    return bool(value) if kind == value_type.BOOL else value.item()


@cache
def _checked_reader() -> type[Any]:
    """``gguf.GGUFReader`` that checks each tensor's bytes lie inside the file before mapping
    them (the plain reader fails on a truncated file with a numpy reshape error)."""
    require("gguf", "reading GGUF files")
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFReader, ReaderField

    class CheckedReader(GGUFReader):
        def __init__(self, path: str) -> None:
            self.path = path
            super().__init__(path)

        def _build_tensors(self, start_offs: int, fields: list[ReaderField]) -> None:
            size = len(self.data)
            try:  # the records' layout is the reader's: if it changed, skip to its own check
                spans = []
                for field in fields:
                    _, raw_name, _, dims, kind, offset = field.parts
                    block, block_bytes = GGML_QUANT_SIZES[GGMLQuantizationType(int(kind[0]))]
                    end = start_offs + int(offset[0]) + int(np.prod(dims)) * block_bytes // block
                    spans.append((end, bytes(raw_name).decode("utf-8")))
            except (ValueError, KeyError, IndexError, TypeError):
                spans = []
            for end, tensor in sorted(spans):
                if end > size:
                    raise UnsupportedModelError(
                        f"tensor {tensor} runs past the end of {self.path} (needs {end} bytes, the "
                        f"file has {size}): the file is truncated, the download is incomplete; "
                        "download it again"
                    )
            super()._build_tensors(start_offs, fields)

    return CheckedReader
