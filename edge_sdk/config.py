"""Model configuration of a Lite decoder (Llama, Qwen2, Qwen3 and Mistral families).

One frozen dataclass describes everything the exporter, the runtime and the planner need to know
about a model's shape. It converts to and from plain dicts (the bundle manifest, the ``model.pt``
checkpoint) and from a Hugging Face ``config.json``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_sdk.errors import ConfigError, UnsupportedModelError

__all__ = [
    "DEFAULT_MAX_SEQ_LEN",
    "SUPPORTED_ARCHITECTURES",
    "ModelConfig",
    "RopeScaling",
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
}
_FAMILIES = frozenset(SUPPORTED_ARCHITECTURES.values())


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

    def __post_init__(self) -> None:
        if self.head_dim == 0 and self.num_heads > 0:
            object.__setattr__(self, "head_dim", self.hidden_size // self.num_heads)
        object.__setattr__(self, "eos_token_ids", tuple(int(i) for i in self.eos_token_ids))
        self._validate()

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
        """Whether q and k are RMS-normalized per head before RoPE (Qwen3)."""
        return self.architecture == "qwen3"

    def layer_parameters(self) -> int:
        """Parameters of one decoder layer (attention, MLP, two norms; Qwen3's q/k norms)."""
        h = self.hidden_size
        attention = h * self.q_size + 2 * h * self.kv_size + self.q_size * h
        if self.qkv_bias:
            attention += self.q_size + 2 * self.kv_size
        if self.qk_norm:
            attention += 2 * self.head_dim
        mlp = 3 * h * self.intermediate_size
        return attention + mlp + 2 * h

    def embedding_parameters(self) -> int:
        """Parameters of the token embedding plus the LM head when it is not tied."""
        table = self.vocab_size * self.hidden_size
        return table if self.tie_word_embeddings else 2 * table

    def parameter_count(self, include_embeddings: bool = True) -> int:
        """Total parameters (tied embeddings counted once)."""
        body = self.num_layers * self.layer_parameters() + self.hidden_size  # + final norm
        return body + (self.embedding_parameters() if include_embeddings else 0)

    # -- conversions --------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict (inverse of :meth:`from_dict`)."""
        data = dataclasses.asdict(self)
        data["eos_token_ids"] = list(self.eos_token_ids)
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
        try:
            return cls(**values)
        except TypeError as exc:
            raise ConfigError(f"invalid model config: {exc}") from exc

    @classmethod
    def from_hf_dict(cls, hf: dict[str, Any]) -> ModelConfig:
        """Build from a Hugging Face ``config.json`` of a supported architecture."""
        archs = hf.get("architectures") or []
        arch = archs[0] if archs else None
        if arch not in SUPPORTED_ARCHITECTURES:
            raise UnsupportedModelError(
                f"architecture {arch or '(none given)'} is not supported; supported: "
                f"{', '.join(SUPPORTED_ARCHITECTURES)}"
            )
        family = SUPPORTED_ARCHITECTURES[arch]
        try:
            heads = int(hf["num_attention_heads"])
            hidden = int(hf["hidden_size"])
            eos = hf.get("eos_token_id")
            eos_ids = tuple(eos) if isinstance(eos, list) else (() if eos is None else (eos,))
            qkv_bias = family == "qwen2" or bool(hf.get("attention_bias", False))
            sliding = hf.get("sliding_window") if family == "mistral" else None
            if family in ("qwen2", "qwen3") and hf.get("use_sliding_window"):
                sliding = hf.get("sliding_window")
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
        return cls.from_hf_dict(data)


def _rope_parameters(hf: dict[str, Any]) -> dict[str, Any]:
    # transformers 5 folds rope_theta and rope_scaling into `rope_parameters`.
    params = hf.get("rope_parameters")
    return params if isinstance(params, dict) else {}


def _rope_theta(hf: dict[str, Any]) -> float:
    return float(hf.get("rope_theta") or _rope_parameters(hf).get("rope_theta") or 10000.0)


def _rope_scaling(hf: dict[str, Any]) -> RopeScaling | None:
    raw = hf.get("rope_scaling") or _rope_parameters(hf)
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
