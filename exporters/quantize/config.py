"""``QuantConfig``: what an export stores its weights (and activations) as, validated up front.

    QuantConfig(method="GPTQ", bits=4, group_size=128, act_scale=True)   # int4, GPTQ + AWQ scaling
    QuantConfig(method="rtn", bits=4, group_size=64)                     # int4, round to nearest
    QuantConfig(method="int8")                                           # int8, 64-blocks (default)
    QuantConfig(method="int8", group_size=0, smoothquant_alpha=None)     # int8 per channel (TRT)
    QuantConfig(method="w8a8", calib_method="percentile", smoothquant_alpha=0.5)
    QuantConfig(method="fp16")  /  QuantConfig(method="fp32")

Methods: ``int8`` (weights int8 in blocks of ``group_size`` inputs, or per channel with
``group_size=0``, activations float in the graph: the CPU default), ``rtn`` and
``gptq`` (weights int4 block-wise along the reduction dimension), ``w8a8`` (int8 weights and
int8 activations, static calibration: TensorRT's explicit-quantization form), ``fp16``, ``fp32``.
``quantize_embedding`` (default on) also quantizes the embedding table (int8 per row) and the LM
head: int8 per output channel, or for int4 ``lm_head_bits`` 8 (a tied head reads the int8 table)
or 4 (int4 blocks, its own copy); off, both stay float, which costs size and speed but no
accuracy. int4's ``embedding_bits`` 4 (an option; the default is 8) stores the table as int4
blocks of ``embedding_group_size`` along each row, stored once: both graphs gather rows from it and
a tied head multiplies by it (``lm_head_bits`` then applies to an untied head only).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from edge_sdk.errors import ConfigError
from edge_sdk.exporters.quantize.mixed import check_mixed, mixed_label
from edge_sdk.planner.precision import (
    EMBEDDING_GROUP_SIZE,
    INT4_DEFAULT_GROUP_SIZE,
    INT4_GROUP_SIZE,
    INT4_INT8_LAYERS,
    INT8_GROUP_SIZE,
)

__all__ = [
    "CALIB_METHODS",
    "EMBEDDING_GROUP_SIZE",
    "INT4_DEFAULT",
    "INT8_GROUP_SIZE",
    "METHODS",
    "QuantConfig",
]

METHODS = ("int8", "w8a8", "rtn", "gptq", "fp16", "fp32")
CALIB_METHODS = ("minmax", "percentile", "entropy")
_BITS = {"int8": 8, "w8a8": 8, "rtn": 4, "gptq": 4, "fp16": 16, "fp32": 32}
# int8's default block, 64 inputs per scale. Measured on SmolLM2-135M (benchmarks/bench_quant.py,
# README "Real models"): per-channel weights with onnxruntime's int8 kernel (activations quantized
# per 128) gave KL 1.1e-2 / top-1 0.93; blocks of 64 with SmoothQuant 0.5, KL 3.6e-3 / top-1 0.957
# at the same speed; blocks of 32, KL 2.6e-3 at 0.93x the decode speed.
_GROUP_SIZE = {"rtn": INT4_GROUP_SIZE, "gptq": INT4_GROUP_SIZE, "int8": INT8_GROUP_SIZE}
# What ``--int4`` alone (and ``export(..., "int4")``) makes, chosen from measurements on
# SmolLM2-135M-Instruct (benchmarks/bench_quant.py --model smollm2): RTN g128 top-1 0.619, ppl
# x1.478; GPTQ + AWQ + act-order g128 0.857, x1.065 (0.594x the int8 bundle); with layer 0 at int8
# 0.866, x1.056 (0.607x). Gemma 3 270M (bench_quant --model gemma3, the table int8 and stored once
# for both graphs): this default at g128 0.797 on the CPU graph (misses 0.80), at g32 0.820, ppl
# x1.048, 0.509x the int8 bundle: the default group was 32 (SmolLM2 at it: 0.874 on the CPU graph,
# x1.036, 0.512x). With GPTQ's act-order scales clipped on the Hessian's diagonal (.gptq), group 64
# passes with margin (CPU graph: Gemma 0.812, x1.015; SmolLM2 0.874, x1.013) at 4.5 bits per
# weight, as llama.cpp's Q4_0, and decodes faster than group 32: the default group is 64.
# The table stays int8: at 4 bits Gemma 3 270M's reached top-1 0.686.
INT4_DEFAULT: dict[str, Any] = {
    "method": "gptq",
    "group_size": INT4_DEFAULT_GROUP_SIZE,
    "act_scale": True,
    "gptq_act_order": True,
    "int8_layers": INT4_INT8_LAYERS,
}
_PRECISION = {
    "int8": "int8",
    "w8a8": "w8a8",
    "rtn": "int4",
    "gptq": "int4",
    "fp16": "fp16",
    "fp32": "fp32",
}


@dataclass(frozen=True)
class QuantConfig:
    """How to quantize an export; invalid combinations raise :class:`~edge_sdk.ConfigError`.

    ``method`` is case-insensitive. ``bits`` defaults to the method's (4 for rtn/gptq, 8 for
    int8/w8a8, 16 for fp16, 32 for fp32) and may only repeat it. ``group_size`` (int4): weights
    per scale along the reduction dimension, a power of two >= 16; when it does not divide a
    layer's input size the last block of that layer is shorter (ONNX blocked quantization).
    ``act_scale`` (int4): AWQ-style per-input-channel scaling searched on calibration activations.
    ``gptq_damp``, ``gptq_act_order``: GPTQ's Hessian damping (share of the mean diagonal) and
    column order by decreasing Hessian diagonal. ``smoothquant_alpha`` (W8A8 and int8; None: no
    smoothing): SmoothQuant's migration of activation outliers into the weights, folded exactly
    into the norms and projections; int8 needs it because onnxruntime's int8 kernel quantizes the
    activations per block at run time. ``calib_method``, ``percentile`` and ``exclude``
    (substrings of MatMul node names kept in float, besides attention's score/value products,
    which are never quantized) are W8A8's.
    """

    method: str = "int8"
    bits: int | None = None
    group_size: int | None = None
    act_scale: bool = False
    gptq_damp: float = 0.01
    gptq_act_order: bool = False
    calib_method: str = "minmax"
    percentile: float = 99.99
    smoothquant_alpha: float | None = 0.5
    exclude: tuple[str, ...] = field(default_factory=tuple)
    quantize_embedding: bool | None = None
    lm_head_bits: int | None = None
    int8_layers: tuple[int, ...] = ()
    int8_matmuls: tuple[str, ...] = ()
    embedding_bits: int | None = None
    embedding_group_size: int | None = None

    def __post_init__(self) -> None:
        method = str(self.method).lower()
        if method == "int4":
            method = "rtn"
        if method not in METHODS:
            raise ConfigError(
                f"QuantConfig.method must be one of {', '.join(METHODS)}, got {self.method!r}"
            )
        object.__setattr__(self, "method", method)
        bits = _BITS[method] if self.bits is None else self.bits
        if bits != _BITS[method]:
            raise ConfigError(
                f"method {method!r} stores {_BITS[method]}-bit weights, got bits={self.bits}"
                + (" (use method='rtn' or 'gptq' for 4 bits)" if bits == 4 else "")
            )
        object.__setattr__(self, "bits", bits)
        if isinstance(self.exclude, str) or not all(isinstance(e, str) for e in self.exclude):
            raise ConfigError("QuantConfig.exclude must be a tuple of MatMul name substrings")
        object.__setattr__(self, "exclude", tuple(self.exclude))
        object.__setattr__(self, "int8_layers", tuple(self.int8_layers))
        object.__setattr__(self, "int8_matmuls", tuple(self.int8_matmuls))
        check_mixed(self.int8_layers, self.int8_matmuls)
        self._check_applies()
        if self.group_size is None and method in _GROUP_SIZE:
            object.__setattr__(self, "group_size", _GROUP_SIZE[method])
        self._check_ranges()
        if self.quantize_embedding is None:
            object.__setattr__(
                self, "quantize_embedding", method in ("int8", "w8a8", "rtn", "gptq")
            )
        if self.lm_head_bits is None and self.precision == "int4":
            object.__setattr__(self, "lm_head_bits", 8)
        if self.lm_head_bits not in (None, 4, 8):
            raise ConfigError(f"lm_head_bits must be 4 or 8, got {self.lm_head_bits}")
        self._check_embedding()

    def _check_embedding(self) -> None:
        """int4's table: ``embedding_bits`` 8 (int8 per row, the default) or 4 (in blocks of
        ``embedding_group_size``, :data:`EMBEDDING_GROUP_SIZE` unless set)."""
        if self.precision != "int4":
            return
        if self.embedding_bits is None:
            object.__setattr__(self, "embedding_bits", 8)
        if self.embedding_bits not in (4, 8):
            raise ConfigError(f"embedding_bits must be 4 or 8, got {self.embedding_bits}")
        if self.embedding_bits == 4 and not self.quantize_embedding:
            raise ConfigError("embedding_bits 4 needs quantize_embedding (the table quantized)")
        if self.embedding_group_size is None:
            object.__setattr__(self, "embedding_group_size", EMBEDDING_GROUP_SIZE)
        g = self.embedding_group_size
        if not (isinstance(g, int) and g >= 16 and not g & (g - 1)):
            raise ConfigError(
                f"embedding_group_size must be a power of two >= 16 (onnxruntime's "
                f"GatherBlockQuantized), got {g}"
            )

    def _check_ranges(self) -> None:
        g = self.group_size
        if self.method in _GROUP_SIZE and not (
            isinstance(g, int)
            and ((g >= 16 and not g & (g - 1)) or (g == 0 and self.method == "int8"))
        ):
            raise ConfigError(
                "group_size must be a power of two >= 16 (onnxruntime's kernels)"
                + (" or 0 (per output channel)" if self.method == "int8" else "")
                + f", got {g}"
            )
        if self.calib_method not in CALIB_METHODS:
            raise ConfigError(
                f"calib_method must be one of {', '.join(CALIB_METHODS)}, got {self.calib_method!r}"
            )
        if not 50.0 < self.percentile <= 100.0:
            raise ConfigError(f"percentile must be in (50, 100], got {self.percentile}")
        if self.smoothquant_alpha is not None and not 0.0 <= self.smoothquant_alpha <= 1.0:
            raise ConfigError(
                f"smoothquant_alpha must be in [0, 1] (or None), got {self.smoothquant_alpha}"
            )
        if not 0.0 < self.gptq_damp < 1.0:
            raise ConfigError(f"gptq_damp must be in (0, 1), got {self.gptq_damp}")

    def _check_applies(self) -> None:
        """Options that only mean something for some methods must not be set for the others."""
        defaults = QuantConfig.__dataclass_fields__

        def changed(name: str) -> bool:
            default = defaults[name].default
            if default is not None and not isinstance(default, (int, float, str, bool)):
                default = ()
            return bool(getattr(self, name) != default)

        only = {
            "group_size": ("rtn", "gptq", "int8"),
            "act_scale": ("rtn", "gptq"),
            "gptq_damp": ("gptq",),
            "gptq_act_order": ("gptq",),
            "calib_method": ("w8a8",),
            "percentile": ("w8a8",),
            "exclude": ("w8a8",),
            "smoothquant_alpha": ("w8a8", "int8"),
            "lm_head_bits": ("rtn", "gptq"),
            "int8_layers": ("rtn", "gptq"),
            "int8_matmuls": ("rtn", "gptq"),
            "embedding_bits": ("rtn", "gptq"),
            "embedding_group_size": ("rtn", "gptq"),
        }
        for name, methods in only.items():
            if changed(name) and self.method not in methods:
                raise ConfigError(
                    f"{name} applies to method {' or '.join(methods)}, not {self.method!r}"
                )
        if self.quantize_embedding and self.method in ("fp16", "fp32"):
            raise ConfigError(
                f"quantize_embedding applies to the integer methods, not {self.method!r}"
            )

    @property
    def precision(self) -> str:
        """The bundle's precision name: fp32, fp16, int8, w8a8 or int4."""
        return _PRECISION[self.method]

    @property
    def int8_blocks(self) -> bool:
        """Some weights are int8 in blocks (the CPU form: int8's default, int4's int8 layers):
        the fused graph keeps them so, the standard graph stores them per output channel, the
        only int8 form TensorRT 10 takes (so the two graphs hold different int8 weights)."""
        if self.method == "int8":
            return bool(self.group_size)
        return self.precision == "int4" and bool(self.int8_layers or self.int8_matmuls)

    @property
    def needs_calibration(self) -> bool:
        """Whether calibration text is read (clipping, GPTQ Hessians, AWQ, activation ranges)."""
        return self.method in ("int8", "w8a8", "gptq") or self.act_scale

    @property
    def label(self) -> str:
        """A short name such as ``int4-gptq-g128+act_scale``."""
        if self.precision == "int4":
            return (
                f"int4-{self.method}-g{self.group_size}"
                + ("+act_scale" if self.act_scale else "")
                + mixed_label(self.int8_layers, self.int8_matmuls)
                + (f"+emb4-g{self.embedding_group_size}" if self.embedding_bits == 4 else "")
            )
        alpha = "none" if self.smoothquant_alpha is None else f"{self.smoothquant_alpha:g}"
        if self.method == "w8a8":
            return f"w8a8-{self.calib_method}-sq{alpha}"
        if self.method == "int8":
            return f"int8-{f'g{self.group_size}' if self.group_size else 'per-channel'}-sq{alpha}"
        return self.method

    @classmethod
    def from_precision(cls, precision: str) -> QuantConfig:
        """The default config of a precision name (``int8``, ``int4``: :data:`INT4_DEFAULT`,
        ``w8a8``, ``fp16``, ``fp32``)."""
        return cls(**INT4_DEFAULT) if precision == "int4" else cls(method=precision)

    def with_changes(self, **changes: Any) -> QuantConfig:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict for the manifest (only the fields that apply to the method)."""
        data: dict[str, Any] = {"method": self.method, "bits": self.bits}
        if self.precision == "int4":
            data.update(
                group_size=self.group_size, act_scale=self.act_scale, lm_head_bits=self.lm_head_bits
            )
            if self.method == "gptq":
                data.update(gptq_damp=self.gptq_damp, gptq_act_order=self.gptq_act_order)
            data.update(int8_layers=list(self.int8_layers), int8_matmuls=list(self.int8_matmuls))
            data.update(
                embedding_bits=self.embedding_bits, embedding_group_size=self.embedding_group_size
            )
        if self.method == "int8":
            data.update(group_size=self.group_size, smoothquant_alpha=self.smoothquant_alpha)
        if self.method == "w8a8":
            data.update(
                calib_method=self.calib_method,
                smoothquant_alpha=self.smoothquant_alpha,
                exclude=list(self.exclude),
            )
            if self.calib_method == "percentile":
                data["percentile"] = self.percentile
        data["quantize_embedding"] = self.quantize_embedding
        return data
