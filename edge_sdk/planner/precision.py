"""Weight precisions the planner knows, and how each stores a model (the layout it estimates).

- ``fp32``: the layout ``edge-export`` writes without ``--int8``: every tensor float32.
- ``fp16`` / ``bf16``: every tensor 2 bytes.
- ``int8``: the layout ``edge-export --int8`` writes (``exporters/quantize/int8.py``). Every MatMul
  weight (attention, MLP and an untied LM head) int8 per output channel plus one fp32 scale per
  output channel (or, the default, per block of ``group_size`` inputs); the embedding table int8
  in the same blocks along each row where they divide it, else with one fp32 scale per row; norms
  and biases fp32. Activations and the KV cache are fp32 (the graph dequantizes to fp32).
- ``int4``: the layout ``edge-export --int4`` writes: 4-bit weights, symmetric (no zero point),
  one fp32 scale per group of ``group_size`` input values; the default's int8 layers
  (:data:`INT4_INT8_LAYERS`) int8 in blocks of :data:`INT8_GROUP_SIZE`; the embedding table int8
  per row (``--embedding-bits 4``, int4 blocks of :data:`EMBEDDING_GROUP_SIZE`, is not the
  default and not modelled); norms fp32. Activations and the KV cache are counted fp16 (the
  GPU's form).

Tied embeddings: every bundle stores the table once (the exporter writes the LM head as
``MatMul(x, Transpose(table))``, for int8 through ``DequantizeLinear(axis=1)`` with the row scales
as the head's channel scales). In memory, onnxruntime folds that Transpose at load time into a
second, transposed copy of the table, so for the SDK's own formats (fp32, int8) the resident
weights hold the table twice (``tied_copy_at_load``). fp16/bf16/int4 describe runtimes that share
a tied head (llama.cpp, MLC, TensorRT-LLM): once.

``--keep-embedding`` keeps the embedding table (and a tied LM head) in the float precision of
the format instead of quantizing it.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_sdk.config import ModelConfig
from edge_sdk.errors import ConfigError

__all__ = [
    "DTYPE_BYTES",
    "EMBEDDING_GROUP_SIZE",
    "INT4_DEFAULT_GROUP_SIZE",
    "INT4_INT8_LAYERS",
    "PRECISIONS",
    "WeightFormat",
    "int4_int8_layer",
    "weight_format",
]

DTYPE_BYTES: dict[str, float] = {"fp32": 4, "fp16": 2, "bf16": 2, "int8": 1, "int4": 0.5}


@dataclass(frozen=True)
class WeightFormat:
    """How a precision stores weights and what it computes in."""

    name: str
    weight_bytes: float  # bytes per quantized weight value
    float_bytes: int  # norms, biases, kept embeddings
    activation_dtype: str  # activations and, by default, the KV cache
    compute: str  # the GPU peak that bounds it: int8 / fp16 / fp32
    quantized: bool = False
    group_size: int | None = None  # int4: values per scale / zero point
    scale_bytes: int = 0  # per output channel (int8) or per group (int4)
    zero_point_bytes: float = 0.0  # per group (int4)
    tied_copy_at_load: bool = False  # a tied LM head becomes a second, transposed table in memory

    @property
    def label(self) -> str:
        return f"{self.name} (group {self.group_size})" if self.group_size else self.name


PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "bf16", "int8", "int4")
#: The exporter's int8 block (``--group-size``; 0: per output channel, TensorRT's form) and int4
#: group defaults; ``edge_sdk.exporters.QuantConfig`` takes them from here.
INT8_GROUP_SIZE = 64
INT4_GROUP_SIZE = 128
#: The ``--int4`` default's group (``--method`` alone keeps :data:`INT4_GROUP_SIZE`): 64 weights
#: per fp32 scale, 4.5 bits per weight as llama.cpp's Q4_0 (whose decode it beats on SmolLM2,
#: where group 32's 5 bits trailed it). Gemma 3 270M's CPU graph passes its gate at 64 (top-1
#: 0.812 with GPTQ's clipped scales), not at 128 (0.797).
INT4_DEFAULT_GROUP_SIZE = 64
#: int4's 4-bit embedding table (``--embedding-bits 4``): values per scale along each row.
EMBEDDING_GROUP_SIZE = 32
#: The decoder layers the ``--int4`` default keeps at int8 (negative: from the end).
INT4_INT8_LAYERS: tuple[int, ...] = (0,)


def int4_int8_layer(config: ModelConfig, index: int) -> bool:
    """Whether the ``--int4`` default stores decoder layer ``index``'s MatMuls at int8."""
    n = config.num_layers
    return any(i % n == index for i in INT4_INT8_LAYERS if -n <= i < n)


def weight_format(name: str, group_size: int | None = None) -> WeightFormat:
    """The format of precision ``name``; ``group_size`` applies to int4 (default 32, the
    ``--int4`` default's) and int8
    (default 64 inputs per fp32 scale; 0: one scale per output channel)."""
    key = name.strip().lower()
    if key in ("float32", "fp32"):
        return WeightFormat("fp32", 4, 4, "fp32", "fp32", tied_copy_at_load=True)
    if key in ("float16", "fp16", "half"):
        return WeightFormat("fp16", 2, 2, "fp16", "fp16")
    if key in ("bfloat16", "bf16"):
        return WeightFormat("bf16", 2, 2, "bf16", "fp16")
    if key.startswith("int8"):
        group = INT8_GROUP_SIZE if group_size is None else group_size
        if group < 0:
            raise ConfigError(f"--group-size must be 0 (per channel) or positive, got {group}")
        return WeightFormat(
            "int8",
            1,
            4,
            "fp32",
            "int8",
            quantized=True,
            scale_bytes=4,
            group_size=group or None,
            tied_copy_at_load=True,
        )
    if key.startswith("int4"):
        group_size = INT4_DEFAULT_GROUP_SIZE if group_size is None else group_size
        if group_size <= 0:
            raise ConfigError(f"--group-size must be a positive integer, got {group_size}")
        return WeightFormat(
            "int4", 0.5, 4, "fp16", "fp16", quantized=True, group_size=group_size, scale_bytes=4
        )
    raise ConfigError(f"unknown precision {name!r}; valid precisions: {', '.join(PRECISIONS)}")
