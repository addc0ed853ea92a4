"""What a decode step reads on each runtime backend: its weights' layout and its activations.

One exported int8 or int4 bundle runs three ways, and each reads different bytes per step:

===============  ==========================================  ======================  ===========
backend          MatMul weights (int8 / int4)                float parts, KV cache   table
===============  ==========================================  ======================  ===========
``cpu-fused``    ``model.ort.onnx`` on onnxruntime's CPU EP: fp32                    as fused
                 int8 in blocks of 64 / int4 in blocks of
                 128 (MatMulNBits), one fp32 scale per block
``cuda-fused``   the fp16 fused graph on the CUDA EP:        fp16                    as fused
                 MatMulNBits int8 / int4 in the same blocks,
                 one fp16 scale per block (symmetric: no
                 zero points stored)
``tensorrt``     ``model.onnx`` built by TensorRT: int8 per  fp16                    per row
                 output channel / int4 in blocks of 128,
                 fp32 scales as the graph stores them
===============  ==========================================  ======================  ===========

The embedding table is int8: in the MatMuls' int8 blocks along each row where they divide it
(the fused graphs of int8 bundles), else one scale per row; a tied LM head reads it. int4
bundles keep an untied LM head at int8 per output channel (``--lm-head-bits 8``, the default)
and the default's int8 layers (layer 0) in int8 blocks (per channel for TensorRT).
A step reads every MatMul weight with its scales once (whatever the batch), the float parts,
one embedding row per sequence, and the cache it attends over (:mod:`.cache`); decode at small
batch is bandwidth-bound, so ``bandwidth / bytes`` bounds its tokens/s.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from edge_sdk.config import ModelConfig
from edge_sdk.errors import ConfigError
from edge_sdk.planner.cache import estimate_cache
from edge_sdk.planner.layers import layer_float_parameters, layer_matmuls
from edge_sdk.planner.memory import int4_layer_format, matmul_bytes
from edge_sdk.planner.precision import INT4_DEFAULT_GROUP_SIZE, INT8_GROUP_SIZE, WeightFormat

__all__ = [
    "BACKENDS",
    "BackendDecode",
    "BackendLayout",
    "DecodeStepBytes",
    "backend_decodes",
    "backend_layout",
    "decode_step_bytes",
]

BACKENDS = ("cpu-fused", "cuda-fused", "tensorrt")
_ACTIVATIONS = {"cpu-fused": ("fp32", 4), "cuda-fused": ("fp16", 2), "tensorrt": ("fp16", 2)}


@dataclass(frozen=True)
class BackendLayout:
    """How ``backend`` holds an int8 or int4 bundle: the MatMul weights, the embedding table (and
    a tied head), an int4 bundle's int8 LM head, the float parts and the activations."""

    backend: str
    precision: str
    matmul: WeightFormat
    table: WeightFormat
    head: WeightFormat  # an untied LM head
    activation_dtype: str  # activations and the KV cache
    float_bytes: int  # norms and biases
    int8_matmul: WeightFormat | None = None  # int4: the default's int8 layers


def _int8(group: int | None, scale_bytes: int) -> WeightFormat:
    return WeightFormat(
        "int8", 1, 4, "fp32", "int8", True, group_size=group, scale_bytes=scale_bytes
    )


def backend_layout(backend: str, precision: str) -> BackendLayout:
    """The layout ``backend`` runs a ``precision`` (int8 or int4) bundle in (module docstring)."""
    if backend not in _ACTIVATIONS:
        raise ConfigError(f"unknown backend {backend!r}; valid backends: {', '.join(BACKENDS)}")
    if precision not in ("int8", "int4"):
        raise ConfigError(f"backend layouts are for int8 and int4 bundles, not {precision!r}")
    activation, float_bytes = _ACTIVATIONS[backend]
    scale = 2 if backend == "cuda-fused" else 4
    per_channel = _int8(None, scale)
    if precision == "int8":
        matmul = per_channel if backend == "tensorrt" else _int8(INT8_GROUP_SIZE, scale)
        return BackendLayout(backend, precision, matmul, matmul, matmul, activation, float_bytes)
    int4 = WeightFormat(
        "int4",
        0.5,
        float_bytes,
        activation,
        "fp16",
        True,
        INT4_DEFAULT_GROUP_SIZE,
        scale_bytes=scale,
    )
    int8 = per_channel if backend == "tensorrt" else _int8(INT8_GROUP_SIZE, scale)
    return BackendLayout(
        backend, precision, int4, per_channel, per_channel, activation, float_bytes, int8
    )


@dataclass(frozen=True)
class DecodeStepBytes:
    """Bytes one decode step of ``batch`` sequences at ``context`` positions reads."""

    backend: str
    precision: str
    matmuls: int  # every layer's MatMul weights with their scales
    floats: int  # norms and biases
    head: int  # the LM head (a tied head: the table)
    embedding_rows: int  # one table row (with its scales) per sequence
    cache: int  # the KV it attends over (and a linear layer's state, read and rewritten)

    @property
    def weights(self) -> int:
        """Everything but the cache."""
        return self.matmuls + self.floats + self.head + self.embedding_rows

    @property
    def total(self) -> int:
        """Weights and cache."""
        return self.weights + self.cache


def _table_format(layout: BackendLayout, hidden: int) -> WeightFormat:
    """The table's blocks where they divide a row, else one scale per row."""
    group = layout.table.group_size
    if group and hidden % group == 0:
        return layout.table
    return dataclasses.replace(layout.table, group_size=None)


def decode_step_bytes(
    config: ModelConfig, backend: str, precision: str, context: int, batch: int = 1
) -> DecodeStepBytes:
    """What a decode step of ``batch`` sequences attending ``context`` positions reads on
    ``backend`` (see the module docstring)."""
    layout = backend_layout(backend, precision)
    h, vocab = config.hidden_size, config.vocab_size
    int8 = layout.int8_matmul or layout.matmul
    matmuls = sum(
        matmul_bytes(int4_layer_format(config, layout.matmul, i, int8), n_in, n_out)
        for i in range(config.num_layers)
        for n_in, n_out in layer_matmuls(config, i)
    )
    floats = sum(layer_float_parameters(config, i) for i in range(config.num_layers)) + h
    table = matmul_bytes(_table_format(layout, h), h, vocab)  # [vocab, hidden]: per row
    head = table if config.tie_word_embeddings else matmul_bytes(layout.head, h, vocab)
    cache = estimate_cache(config, context, batch, layout.activation_dtype).step_bytes
    return DecodeStepBytes(
        backend,
        precision,
        matmuls,
        floats * layout.float_bytes,
        head,
        batch * math.ceil(table / vocab),
        cache,
    )


@dataclass(frozen=True)
class BackendDecode:
    """One backend's decode bound: the bytes a step reads, and ``bandwidth / bytes`` as tokens/s
    of all ``batch`` sequences together (the DRAM bound; the CPU reaches a smaller share of it
    than the GPU)."""

    backend: str
    bytes_per_step: int
    decode_tps: float


def backend_decodes(
    config: ModelConfig, precision: str, context: int, batch: int, bandwidth_bytes_s: float
) -> tuple[BackendDecode, ...]:
    """Each backend's decode bound for a ``precision`` bundle (none for other precisions)."""
    if precision not in ("int8", "int4"):
        return ()
    steps = [decode_step_bytes(config, b, precision, context, batch) for b in BACKENDS]
    return tuple(
        BackendDecode(s.backend, s.total, batch * bandwidth_bytes_s / s.total) for s in steps
    )
