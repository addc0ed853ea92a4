"""The embedding table and the LM head as each precision stores them, and logits computed from
them in PyTorch for the references (in vocabulary chunks: a float [V, E] head is never copied)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from edge_sdk.config import ModelConfig
from edge_sdk.exporters.quantize.config import QuantConfig
from edge_sdk.exporters.quantize.gptq import gptq_int4
from edge_sdk.exporters.quantize.qweight import (
    QWeight,
    float_weight,
    int4_weight,
    int8_rows,
    int8_weight,
)
from edge_sdk.exporters.stream.graphs import Table
from edge_sdk.exporters.weights.source import WeightSource

__all__ = [
    "EMBEDDING",
    "HEAD",
    "compact",
    "float_head",
    "head_logits",
    "head_weight",
    "stored_table",
    "table_bits",
]

EMBEDDING = "model.embed_tokens.weight"
HEAD = "lm_head.weight"
_CHUNK = 16384  # vocabulary rows per block of logits


def table_bits(config: ModelConfig, quant: QuantConfig) -> int:
    """Bits of the stored table: 4 for int4 with ``embedding_bits`` 4 where its blocks divide
    the hidden size and the vocabulary is even (the standard graph reads two columns of the
    transposed table per byte), else 8 (32: float)."""
    if not (quant.precision in ("int8", "int4") and quant.quantize_embedding):
        return 32
    group = int(quant.embedding_group_size or 0)
    bits = quant.embedding_bits
    fits = group and config.hidden_size % group == 0 and config.vocab_size % 2 == 0
    return 4 if bits == 4 and fits else 8


def stored_table(
    table: np.ndarray,
    quant: QuantConfig,
    per_row: bool = False,
    bits: int = 8,
    moments: np.ndarray | None = None,
) -> Table:
    """The embedding as stored: for the integer methods int8 (``bits`` 4: int4 blocks of
    ``embedding_group_size`` along each row, round to nearest with each block's clipping
    weighted by ``moments`` [E], the tied head's inputs' mean squares), else float. int8 exports in
    blocks (the CPU form) store the table in the same blocks along each row where they divide
    it; the others, and the standard graph (``per_row``: TensorRT takes block-wise scales for
    int4 weights only, and the tied head reads the table), one scale per row."""
    if bits == 4:
        levels = int4_weight(table.T, int(quant.embedding_group_size or 0), None, moments)
        return Table(levels.values.T, levels.scale.T if levels.scale is not None else None, 4)
    if quant.precision in ("int8", "int4") and quant.quantize_embedding:
        block = int(quant.group_size or 0) if quant.precision == "int8" and not per_row else 0
        return Table(*int8_rows(table, block if block and table.shape[1] % block == 0 else 0))
    return Table(np.ascontiguousarray(table, dtype=np.float32))


def float_head(config: ModelConfig, weights: WeightSource) -> np.ndarray:
    """The float LM head [V, E] (the embedding table when tied)."""
    return weights.get(EMBEDDING if config.tie_word_embeddings else HEAD)


def compact(values: np.ndarray) -> np.ndarray:
    """``values`` (float32) as bfloat16 bits (uint16) when that is exact, as for a bfloat16
    checkpoint: half the memory; :func:`head_logits` widens it a slice at a time."""
    bits = values.view(np.uint32)
    high = np.empty(values.shape, np.uint16)
    for start in range(0, len(bits), _CHUNK):
        part = bits[start : start + _CHUNK]
        if np.any(part & 0xFFFF):
            return values
        high[start : start + _CHUNK] = part >> 16
    return high


def _widened(values: np.ndarray) -> np.ndarray:
    if values.dtype == np.uint16:
        return (values.astype(np.uint32) << 16).view(np.float32)
    return values.astype(np.float32)


def head_weight(
    config: ModelConfig,
    quant: QuantConfig,
    weights: WeightSource,
    moments: np.ndarray | None,
    hessian: Tensor | None,
    per_channel: bool = False,
) -> QWeight | None:
    """The LM head as stored [E, V], or None when it reads the (stored) embedding table.

    int8: a tied head reads the int8 table; an untied one is int8 like the other MatMuls
    (``moments``: its input's mean squares, for clipping; ``per_channel``: one scale per output
    channel whatever the blocks, the standard graph's form). int4: int8 per channel (a tied one
    the table), or with ``lm_head_bits`` 4 int4 blocks, its own copy, GPTQ-solved on ``hessian``;
    a tied head reads a 4-bit table (:func:`table_bits`) whatever ``lm_head_bits``.
    """
    tied = config.tie_word_embeddings
    if tied and table_bits(config, quant) == 4:
        return None
    if quant.precision not in ("int8", "int4") or not quant.quantize_embedding:
        return None if tied else float_weight(weights.get(HEAD).T)
    if quant.precision == "int8":
        return (
            None
            if tied
            else int8_weight(
                weights.get(HEAD).T, 0 if per_channel else int(quant.group_size or 0), moments
            )
        )
    if quant.lm_head_bits == 8:
        return None if tied else int8_weight(weights.get(HEAD).T, 0, None)
    w = float_head(config, weights)
    group = int(quant.group_size or 0)
    solved = None
    if hessian is not None:
        solved = gptq_int4(
            torch.from_numpy(w), hessian, group, quant.gptq_damp, quant.gptq_act_order, consume=True
        )
    return int4_weight(w.T, group, solved)


def head_logits(h: Tensor, table: Table, head: QWeight | None) -> np.ndarray:
    """Logits [N, V] of normalized hidden states ``h`` [N, E] through the head as stored."""
    rows = h.float().numpy()
    if head is None:  # the table, [V, E]
        vocab = table.values.shape[0]
        out = np.empty((rows.shape[0], vocab), np.float32)
        for start in range(0, vocab, _CHUNK):
            part = _widened(table.values[start : start + _CHUNK])
            if table.scale is not None:
                part *= table.scales(slice(start, start + _CHUNK))
            out[:, start : start + _CHUNK] = rows @ part.T
        return out
    vocab = head.shape[1]
    out = np.empty((rows.shape[0], vocab), np.float32)
    for start in range(0, vocab, _CHUNK):
        block = QWeight(
            head.values[:, start : start + _CHUNK],
            None if head.scale is None else head.scale[..., start : start + _CHUNK],
            head.bits,
            head.block,
        )
        out[:, start : start + _CHUNK] = rows @ block.dequantized()
    return out
