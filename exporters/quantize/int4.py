"""INT4 weight-only block-wise quantization, in standard ONNX form (opset 21).

A MatMul weight [K, N] is stored as ``DequantizeLinear(int4 [K, N], scale [ceil(K/G), N],
axis=0, block_size=G) -> MatMul``: symmetric (zero point 0, levels -8..7), one scale per G
consecutive inputs (the reduction dimension) of each output channel. onnxruntime fuses the pair
into its 4-bit ``MatMulNBits`` kernel at load time (measured, also when G does not divide K: the
last block is then shorter, as ONNX's blocked quantization defines, so no padding is stored);
TensorRT reads the same standard form. The levels come from round to nearest (:func:`rtn_int4`:
scale = block max |w| / 7, or the clipping of least weighted error) or from GPTQ (:mod:`.gptq`).
The embedding table is int8 per row by default, or with ``embedding_bits`` 4 int4 blocks along
each row (``stream.graphs``: ``GatherBlockQuantized`` in the fused graph); the LM head is int8 per
output channel (a tied head reads the table, as llama.cpp keeps its output tensor at higher
precision) or, with ``lm_head_bits`` 4, int4 blocks of its own (as onnxruntime-genai does).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge_sdk.exporters.quantize.int8 import CLIP_RATIOS

__all__ = ["QMAX", "QMIN", "Int4Report", "dequantize_int4", "int4_packed", "rtn_int4"]

QMIN, QMAX = -8, 7


@dataclass(frozen=True)
class Int4Report:
    """What an int4 export stored."""

    matmuls: int
    solved: int  # of which the weights came from the solver (GPTQ) rather than RTN
    embeddings: int
    int4_bytes: int
    int8_bytes: int
    scale_bytes: int
    float_bytes_left: int


def rtn_int4(
    w: np.ndarray, group: int, moments: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Round-to-nearest int4 of ``w`` [K, N] in blocks of ``group`` rows: (q [K, N], scale [B,
    N]); each block's clipping from ``moments`` [K] (the least ``moments``-weighted squared error
    over :data:`~.int8.CLIP_RATIOS`), else its max |w|."""
    k, n = w.shape
    blocks = -(-k // group)
    padded = np.zeros((blocks * group, n), dtype=np.float32)
    padded[:k] = w
    grid = padded.reshape(blocks, group, n)
    peak = np.abs(grid).max(axis=1)  # [B, N]
    scale = (np.where(peak > 0, peak, 1.0) / QMAX).astype(np.float32)
    if moments is not None:
        weights = np.zeros(blocks * group, dtype=np.float32)
        weights[:k] = moments
        weights = weights.reshape(blocks, group, 1)
        best = np.full(peak.shape, np.inf, dtype=np.float32)
        base = scale
        for ratio in CLIP_RATIOS:
            candidate = base * np.float32(ratio)
            q = np.clip(np.rint(grid / candidate[:, None]), QMIN, QMAX)
            err = (weights * (grid - q * candidate[:, None]) ** 2).sum(axis=1)
            better = err < best
            best = np.where(better, err, best)
            scale = np.where(better, candidate, scale)
    q = np.clip(np.rint(w / np.repeat(scale, group, axis=0)[:k]), QMIN, QMAX).astype(np.int8)
    return q, scale


def dequantize_int4(q: np.ndarray, scale: np.ndarray, group: int) -> np.ndarray:
    """The float weights [K, N] that ``DequantizeLinear`` reconstructs."""
    weights: np.ndarray = q.astype(np.float32) * np.repeat(scale, group, axis=0)[: q.shape[0]]
    return weights.astype(np.float32)


def int4_packed(q: np.ndarray) -> np.ndarray:
    """ONNX ``INT4`` bytes of ``q`` (levels -8..7): two values per byte, the first in the low
    nibble, an odd count padded with 0."""
    flat = q.astype(np.int8).ravel().view(np.uint8) & 0x0F
    if flat.size % 2:
        flat = np.append(flat, np.uint8(0))
    packed: np.ndarray = (flat[0::2] | (flat[1::2] << 4)).astype(np.uint8)
    return packed
