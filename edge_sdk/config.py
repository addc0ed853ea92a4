"""Model configuration of a Lite decoder (Llama, Qwen2, Qwen3, Mistral and Gemma 3 families).

One frozen dataclass describes everything the exporter, the runtime and the planner need to know
about a model's shape. It converts to and from plain dicts (the bundle manifest, the ``model.pt``
checkpoint) and from a Hugging Face ``config.json``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_sdk.errors import ConfigError, UnsupportedModelError

__all__ = [
    "DEFAULT_MAX_SEQ_LEN",
    "LAYER_TYPES",
    "SUPPORTED_ARCHITECTURES",
    "TEXT_DECODERS",
    "LinearAttention",
    "ModelConfig",
    "RopeScaling",
    "text_decoder_config",
]

# The longest context a bundle is exported (and TensorRT-checked) for unless told otherwise;
# a model whose own limit is lower gets its limit.
DEFAULT_MAX_SEQ_LEN = 2048

# Hugging Face `architectures[0]` -> our family name.
SUPPORTED_ARCHITECTURES: dict[str, str] = {
    "LlamaForCausalLM": "llama",
    "Qwen2ForCausalLM": "qwen2",
    "MistralForCausalLM": "mistral",
    "Qwen3ForCausalLM": "qwen3",
    "Gemma3ForCausalLM": "gemma3",
    "Qwen3_5ForCausalLM": "qwen3_5",  # read for planning; the exporter says it has none yet
}
#: Vision-language checkpoints whose text decoder exports alone: architecture -> the text one.
TEXT_DECODERS: dict[str, str] = {
    "Gemma3ForConditionalGeneration": "Gemma3ForCausalLM",
    "Qwen3_5ForConditionalGeneration": "Qwen3_5ForCausalLM",
}
# What a Gemma 3 `text_config` may leave out: transformers' Gemma3TextConfig defaults.
_GEMMA3_TEXT_DEFAULTS: dict[str, Any] = {
    "vocab_size": 262208,
    "hidden_size": 2304,
    "intermediate_size": 9216,
    "num_hidden_layers": 26,
    "num_attention_heads": 8,
    "num_key_value_heads": 4,
    "head_dim": 256,
    "max_position_embeddings": 131072,
    "rms_norm_eps": 1e-6,
    "rope_theta": 1000000.0,
    "rope_local_base_freq": 10000.0,
    "query_pre_attn_scalar": 256,
    "sliding_window": 4096,
    "bos_token_id": 2,
    "eos_token_id": 1,
    "tie_word_embeddings": True,
}
_FAMILIES = frozenset(SUPPORTED_ARCHITECTURES.values())

#: What a decoder layer's token mixer is: causal attention over every past position, attention
#: over the last ``sliding_window`` positions, or a linear-attention recurrence (Gated DeltaNet).
LAYER_TYPES = ("full_attention", "sliding_attention", "linear_attention")


@dataclass(frozen=True)
class RopeScaling:
    """RoPE frequency scaling. ``kind`` is ``"llama3"`` (Llama 3.1/3.2) or ``"linear"``."""

    kind: str
    factor: float
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    original_max_position_embeddings: int = 8192

    def __post_init__(self) -> None:
        if self.kind not in ("llama3", "linear"):
            raise UnsupportedModelError(
                f"RoPE scaling type {self.kind!r} is not supported; supported: 'llama3', 'linear'"
            )
        if not self.factor > 0:
            raise ConfigError(f"rope_scaling.factor must be > 0, got {self.factor}")
        if self.kind == "llama3" and not self.high_freq_factor > self.low_freq_factor:
            raise ConfigError("rope_scaling: high_freq_factor must exceed low_freq_factor")


@dataclass(frozen=True)
class LinearAttention:
    """Shapes of a Gated DeltaNet layer (Qwen3.5): key/value heads and widths, and the kernel of
    its causal depthwise convolution. Its state per sequence is fixed: a conv window of
    ``conv_kernel - 1`` positions and a ``key_head_dim x value_head_dim`` matrix per value head."""

    num_key_heads: int
    num_value_heads: int
    key_head_dim: int
    value_head_dim: int
    conv_kernel: int = 4

    def __post_init__(self) -> None:
        for name in ("num_key_heads", "num_value_heads", "key_head_dim", "value_head_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(
                    f"linear_attention.{name} must be a positive integer, got {value!r}"
                )
        if self.conv_kernel < 1:
            raise ConfigError(f"linear_attention.conv_kernel must be >= 1, got {self.conv_kernel}")
        if self.num_value_heads % self.num_key_heads:
            raise ConfigError(
                f"linear_attention.num_value_heads ({self.num_value_heads}) must be a multiple of "
                f"num_key_heads ({self.num_key_heads})"
            )

    @property
    def conv_channels(self) -> int:
        """Channels of the depthwise convolution: q, k and v together."""
        return (
            2 * self.num_key_heads * self.key_head_dim + self.num_value_heads * self.value_head_dim
        )

    def state_values(self) -> int:
        """Values of one layer's state for one sequence: conv window plus recurrent matrices."""
        conv = self.conv_channels * (self.conv_kernel - 1)
        return conv + self.num_value_heads * self.key_head_dim * self.value_head_dim


@dataclass(frozen=True)
class ModelConfig:
    """Shape and hyper-parameters of a decoder-only model with RMSNorm, RoPE, GQA and SwiGLU."""

    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    intermediate_size: int
    head_dim: int = 0  # 0: hidden_size // num_heads
    architecture: str = "llama"
    rope_theta: float = 10000.0
    rope_scaling: RopeScaling | None = None
    rms_norm_eps: float = 1e-5
    max_position_embeddings: int = 2048
    tie_word_embeddings: bool = False
    qkv_bias: bool = False
    sliding_window: int | None = None
    bos_token_id: int | None = None
    eos_token_ids: tuple[int, ...] = field(default_factory=tuple)
    # Per layer, one of LAYER_TYPES; () means every layer alike: full attention, or sliding over
    # `sliding_window` positions when that is set (Mistral).
    layer_types: tuple[str, ...] = ()
    rope_local_theta: float | None = None  # RoPE base of the sliding layers (Gemma 3: 10000)
    query_pre_attn_scalar: float | None = None  # scores scaled by its -1/2 power (default head_dim)
    partial_rotary_factor: float = 1.0  # the share of head_dim RoPE rotates (Qwen3.5: 0.25)
    linear_attention: LinearAttention | None = None  # shapes of the linear layers (Qwen3.5)

    def __post_init__(self) -> None:
        if self.head_dim == 0 and self.num_heads > 0:
            object.__setattr__(self, "head_dim", self.hidden_size // self.num_heads)
        object.__setattr__(self, "eos_token_ids", tuple(int(i) for i in self.eos_token_ids))
        object.__setattr__(self, "layer_types", tuple(str(t) for t in self.layer_types))
        self._validate()
        self._validate_layers()

    def _validate(self) -> None:
        for name in (
            "vocab_size",
            "hidden_size",
            "num_layers",
            "num_heads",
            "num_kv_heads",
            "intermediate_size",
            "head_dim",
            "max_position_embeddings",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.architecture not in _FAMILIES:
            raise UnsupportedModelError(
                f"model family {self.architecture!r} is not supported; supported: "
                f"{', '.join(sorted(_FAMILIES))}"
            )
        if self.num_heads % self.num_kv_heads:
            raise ConfigError(
                f"num_heads ({self.num_heads}) must be a multiple of num_kv_heads "
                f"({self.num_kv_heads}) for grouped-query attention"
            )
        if self.head_dim % 2:
            raise ConfigError(f"head_dim must be even for RoPE, got {self.head_dim}")
        if not (self.rope_theta > 0 and math.isfinite(self.rope_theta)):
            raise ConfigError(f"rope_theta must be a positive number, got {self.rope_theta}")
        if not 0 < self.rms_norm_eps < 1:
            raise ConfigError(f"rms_norm_eps must be in (0, 1), got {self.rms_norm_eps}")
        if self.sliding_window is not None and self.sliding_window <= 0:
            raise ConfigError(f"sliding_window must be positive, got {self.sliding_window}")
        for token_id in (
            *self.eos_token_ids,
            *(() if self.bos_token_id is None else (self.bos_token_id,)),
        ):
            if not 0 <= token_id < self.vocab_size:
                raise ConfigError(
                    f"special token id {token_id} is outside the vocabulary "
                    f"(size {self.vocab_size})"
                )

    def _validate_layers(self) -> None:
        if self.layer_types and len(self.layer_types) != self.num_layers:
            raise ConfigError(
                f"layer_types lists {len(self.layer_types)} layers, the model has {self.num_layers}"
            )
        unknown = sorted(set(self.layer_types) - set(LAYER_TYPES))
        if unknown:
            raise ConfigError(
                f"unknown layer types {', '.join(unknown)}; known: {', '.join(LAYER_TYPES)}"
            )
        if "sliding_attention" in self.layer_types and self.sliding_window is None:
            raise ConfigError("layer_types has sliding_attention layers but no sliding_window")
        if ("linear_attention" in self.layer_types) != (self.linear_attention is not None):
            raise ConfigError(
                "linear_attention shapes are needed exactly when layer_types has "
                "linear_attention layers"
            )
        if not 0 < self.partial_rotary_factor <= 1:
            raise ConfigError(
                f"partial_rotary_factor must be in (0, 1], got {self.partial_rotary_factor}"
            )
        if self.rotary_dim % 2:
            raise ConfigError(f"the rotary width must be even, got {self.rotary_dim}")
        for name in ("rope_local_theta", "query_pre_attn_scalar"):
            value = getattr(self, name)
            if value is not None and not (value > 0 and math.isfinite(value)):
                raise ConfigError(f"{name} must be a positive number, got {value}")

    # -- layers -------------------------------------------------------------------------------

    def layer_type(self, index: int) -> str:
        """The token mixer of layer ``index`` (one of :data:`LAYER_TYPES`)."""
        if self.layer_types:
            return self.layer_types[index]
        return "full_attention" if self.sliding_window is None else "sliding_attention"

    def layer_window(self, index: int) -> int | None:
        """How many positions layer ``index`` attends to (itself included); None: all."""
        return self.sliding_window if self.layer_type(index) == "sliding_attention" else None

    def local_rope(self, index: int) -> bool:
        """Whether layer ``index`` uses the sliding layers' RoPE base (Gemma 3)."""
        return self.rope_local_theta is not None and self.layer_type(index) == "sliding_attention"

    @property
    def attention_layers(self) -> tuple[int, ...]:
        """Indices of the layers with a KV cache (every layer but the linear-attention ones)."""
        return tuple(i for i in range(self.num_layers) if self.layer_type(i) != "linear_attention")

    @property
    def attention_scale(self) -> float:
        """What the attention scores q.k are multiplied by."""
        scalar = float(self.query_pre_attn_scalar or self.head_dim)
        return 1.0 / math.sqrt(scalar)

    @property
    def rotary_dim(self) -> int:
        """How many channels of each head RoPE rotates (the first ones)."""
        return int(self.head_dim * self.partial_rotary_factor)

    @property
    def norm_offset(self) -> float:
        """Added to every RMSNorm weight: Gemma and Qwen3.5 store ``w`` and scale by ``1 + w``."""
        return 1.0 if self.architecture in ("gemma3", "qwen3_5") else 0.0

    @property
    def embedding_scale(self) -> float:
        """What the embedding rows are multiplied by (Gemma: sqrt(hidden_size)), else 1."""
        return math.sqrt(self.hidden_size) if self.architecture == "gemma3" else 1.0

    # -- derived sizes ------------------------------------------------------------------------

    @property
    def q_size(self) -> int:
        """Width of the query projection (num_heads x head_dim)."""
        return self.num_heads * self.head_dim

    @property
    def kv_size(self) -> int:
        """Width of each of the key and value projections (num_kv_heads x head_dim)."""
        return self.num_kv_heads * self.head_dim

    @property
    def qk_norm(self) -> bool:
        """Whether q and k are RMS-normalized per head before RoPE (Qwen3, Gemma 3, Qwen3.5)."""
        return self.architecture in ("qwen3", "gemma3", "qwen3_5")

    @property
    def norms_per_layer(self) -> int:
        """Hidden-size norms in a layer: Gemma 3 adds a norm after attention and after the MLP."""
        return 4 if self.architecture == "gemma3" else 2

    def layer_parameters(self, index: int = 0) -> int:
        """Parameters of decoder layer ``index`` (token mixer, MLP, norms)."""
        h = self.hidden_size
        mlp = 3 * h * self.intermediate_size
        norms = self.norms_per_layer * h
        linear = self.linear_attention
        if self.layer_type(index) == "linear_attention" and linear is not None:
            v_size = linear.num_value_heads * linear.value_head_dim
            mixer = h * (linear.conv_channels + v_size + 2 * linear.num_value_heads)  # qkv, z, b, a
            mixer += linear.conv_channels * linear.conv_kernel + 2 * linear.num_value_heads
            mixer += linear.value_head_dim + v_size * h  # gated norm, out_proj
            return mixer + mlp + norms
        q_out = 2 * self.q_size if self.architecture == "qwen3_5" else self.q_size  # output gate
        attention = h * q_out + 2 * h * self.kv_size + self.q_size * h
        if self.qkv_bias:
            attention += self.q_size + 2 * self.kv_size
        if self.qk_norm:
            attention += 2 * self.head_dim
        return attention + mlp + norms

    def embedding_parameters(self) -> int:
        """Parameters of the token embedding plus the LM head when it is not tied."""
        table = self.vocab_size * self.hidden_size
        return table if self.tie_word_embeddings else 2 * table

    def parameter_count(self, include_embeddings: bool = True) -> int:
        """Total parameters (tied embeddings counted once)."""
        layers = sum(self.layer_parameters(i) for i in range(self.num_layers))
        body = layers + self.hidden_size  # + final norm
        return body + (self.embedding_parameters() if include_embeddings else 0)

    # -- conversions --------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict (inverse of :meth:`from_dict`)."""
        data = dataclasses.asdict(self)
        data["eos_token_ids"] = list(self.eos_token_ids)
        data["layer_types"] = list(self.layer_types)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Build from :meth:`to_dict` output; unknown keys are an error."""
        if not isinstance(data, dict):
            raise ConfigError(f"a model config must be a mapping, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown model config keys: {', '.join(unknown)}")
        values = dict(data)
        scaling = values.get("rope_scaling")
        if isinstance(scaling, dict):
            values["rope_scaling"] = RopeScaling(**scaling)
        values["eos_token_ids"] = tuple(values.get("eos_token_ids") or ())
        values["layer_types"] = tuple(values.get("layer_types") or ())
        linear = values.get("linear_attention")
        if isinstance(linear, dict):
            values["linear_attention"] = LinearAttention(**linear)
        try:
            return cls(**values)
        except TypeError as exc:
            raise ConfigError(f"invalid model config: {exc}") from exc

    @classmethod
    def from_hf_dict(cls, hf: dict[str, Any]) -> ModelConfig:
        """Build from a Hugging Face ``config.json`` of a supported architecture (of a
        vision-language one in :data:`TEXT_DECODERS`: its text decoder's)."""
        archs = hf.get("architectures") or []
        arch = archs[0] if archs else None
        if arch in TEXT_DECODERS:
            hf = text_decoder_config(hf)
            arch = TEXT_DECODERS[arch]
        if arch not in SUPPORTED_ARCHITECTURES:
            raise UnsupportedModelError(
                f"architecture {arch or '(none given)'} is not supported; supported: "
                f"{', '.join([*SUPPORTED_ARCHITECTURES, *TEXT_DECODERS])}"
            )
        family = SUPPORTED_ARCHITECTURES[arch]
        try:
            heads = int(hf["num_attention_heads"])
            hidden = int(hf["hidden_size"])
            eos = hf.get("eos_token_id")
            eos_ids = tuple(eos) if isinstance(eos, list) else (() if eos is None else (eos,))
            qkv_bias = family == "qwen2" or bool(hf.get("attention_bias", False))
            sliding = hf.get("sliding_window") if _has_sliding_window(family, hf) else None
            extra = _FAMILY_FIELDS[family](hf) if family in _FAMILY_FIELDS else {}
            return cls(
                architecture=family,
                vocab_size=int(hf["vocab_size"]),
                hidden_size=hidden,
                num_layers=int(hf["num_hidden_layers"]),
                num_heads=heads,
                num_kv_heads=int(hf.get("num_key_value_heads") or heads),
                head_dim=int(hf.get("head_dim") or hidden // heads),
                intermediate_size=int(hf["intermediate_size"]),
                rope_theta=float(_rope_theta(hf)),
                rope_scaling=_rope_scaling(hf),
                rms_norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
                max_position_embeddings=int(hf.get("max_position_embeddings", 2048)),
                tie_word_embeddings=bool(hf.get("tie_word_embeddings", False)),
                qkv_bias=qkv_bias,
                sliding_window=int(sliding) if sliding else None,
                bos_token_id=hf.get("bos_token_id"),
                eos_token_ids=eos_ids,
                **extra,
            )
        except KeyError as exc:
            raise ConfigError(f"config.json lacks the required key {exc.args[0]!r}") from exc
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"config.json has an invalid value: {exc}") from exc

    @classmethod
    def from_hf_file(cls, path: str | Path) -> ModelConfig:
        """Read a Hugging Face ``config.json``."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"{path} does not exist") from exc
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read {path} as JSON: {exc}") from exc
        try:
            return cls.from_hf_dict(data)
        except UnsupportedModelError as exc:
            raise UnsupportedModelError(f"{path}: {exc}") from exc


def text_decoder_config(hf: dict[str, Any]) -> dict[str, Any]:
    """The ``config.json`` of the text decoder of a vision-language checkpoint: its
    ``text_config`` over the family's defaults, then the top level's tied head and special
    tokens where it gives them (the whole model's tying is what transformers applies; a saved
    ``text_config`` carries its class default, e.g. Qwen3.5's untied one)."""
    text = hf.get("text_config")
    if not isinstance(text, dict):
        raise ConfigError("config.json of a vision-language model lacks its text_config")
    tied = {k: hf[k] for k in ("tie_word_embeddings", "eos_token_id", "bos_token_id") if k in hf}
    arch = TEXT_DECODERS[hf["architectures"][0]]
    defaults = _GEMMA3_TEXT_DEFAULTS if arch == "Gemma3ForCausalLM" else {}
    return defaults | text | tied | {"architectures": [arch]}


def _rope_parameters(hf: dict[str, Any]) -> dict[str, Any]:
    # transformers 5 folds rope_theta and rope_scaling into `rope_parameters`.
    params = hf.get("rope_parameters")
    return params if isinstance(params, dict) else {}


def _rope_parameters_of(hf: dict[str, Any], layer_type: str) -> dict[str, Any]:
    # Gemma 3 in transformers 5: one `rope_parameters` entry per layer type.
    params = _rope_parameters(hf).get(layer_type)
    return params if isinstance(params, dict) else {}


def _rope_theta(hf: dict[str, Any]) -> float:
    params = _rope_parameters_of(hf, "full_attention") or _rope_parameters(hf)
    return float(hf.get("rope_theta") or params.get("rope_theta") or 10000.0)


def _gemma3_fields(hf: dict[str, Any]) -> dict[str, Any]:
    """Gemma 3's layer pattern (5 sliding layers, then a global one, unless ``layer_types``
    says), its local RoPE base and the attention scale."""
    layers = int(hf["num_hidden_layers"])
    pattern = int(hf.get("sliding_window_pattern") or hf.get("_sliding_window_pattern") or 6)
    types = hf.get("layer_types") or [
        "sliding_attention" if (i + 1) % pattern else "full_attention" for i in range(layers)
    ]
    local = _rope_parameters_of(hf, "sliding_attention").get("rope_theta")
    return {
        "layer_types": tuple(types),
        "rope_local_theta": float(hf.get("rope_local_base_freq") or local or 10000.0),
        "query_pre_attn_scalar": float(hf.get("query_pre_attn_scalar") or 256),
    }


def _qwen3_5_fields(hf: dict[str, Any]) -> dict[str, Any]:
    """Qwen3.5's layer pattern (three Gated DeltaNet layers, then a gated full-attention one,
    unless ``layer_types`` says), the linear layers' shapes and the rotated share of a head."""
    layers = int(hf["num_hidden_layers"])
    every = int(hf.get("full_attention_interval") or 4)
    types = hf.get("layer_types") or [
        "full_attention" if (i + 1) % every == 0 else "linear_attention" for i in range(layers)
    ]
    rotary = hf.get("partial_rotary_factor") or _rope_parameters(hf).get("partial_rotary_factor")
    return {
        "layer_types": tuple(types),
        "partial_rotary_factor": float(rotary or 0.25),
        "linear_attention": LinearAttention(
            num_key_heads=int(hf.get("linear_num_key_heads") or 16),
            num_value_heads=int(hf.get("linear_num_value_heads") or 32),
            key_head_dim=int(hf.get("linear_key_head_dim") or 128),
            value_head_dim=int(hf.get("linear_value_head_dim") or 128),
            conv_kernel=int(hf.get("linear_conv_kernel_dim") or 4),
        ),
    }


def _has_sliding_window(family: str, hf: dict[str, Any]) -> bool:
    """Whether ``sliding_window`` applies: Mistral (every layer) and Gemma 3 (its sliding layers)
    always, Qwen2 / Qwen3 when ``use_sliding_window`` says so."""
    if family in ("mistral", "gemma3"):
        return True
    return family in ("qwen2", "qwen3") and bool(hf.get("use_sliding_window"))


#: The fields only some families' config.json give, read by family.
_FAMILY_FIELDS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "gemma3": _gemma3_fields,
    "qwen3_5": _qwen3_5_fields,
}


def _rope_scaling(hf: dict[str, Any]) -> RopeScaling | None:
    raw = (
        hf.get("rope_scaling") or _rope_parameters_of(hf, "full_attention") or _rope_parameters(hf)
    )
    if not raw:
        return None
    kind = raw.get("rope_type") or raw.get("type")
    if kind in (None, "default"):
        return None
    if kind not in ("llama3", "linear"):
        raise UnsupportedModelError(
            f"RoPE scaling type {kind!r} is not supported; supported: 'llama3', 'linear'"
        )
    return RopeScaling(
        kind=kind,
        factor=float(raw.get("factor", 1.0)),
        low_freq_factor=float(raw.get("low_freq_factor", 1.0)),
        high_freq_factor=float(raw.get("high_freq_factor", 4.0)),
        original_max_position_embeddings=int(raw.get("original_max_position_embeddings", 8192)),
    )
