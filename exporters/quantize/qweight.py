"""One MatMul weight as the graphs store it: float, or integer levels with their scales.

The streamed exporter quantizes each weight once, as a :class:`QWeight`, and both graphs (the
standard one and the fused onnxruntime one) write the same values, so they compute the same
function. Layout is ONNX's ``MatMul`` right operand, ``[K, N]`` (inputs x outputs).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edge_sdk.exporters.quantize.int4 import rtn_int4
from edge_sdk.exporters.quantize.int8 import _per_channel, blocked_int8

__all__ = ["QWeight", "float_weight", "int4_weight", "int8_rows", "int8_weight"]


@dataclass(frozen=True)
class QWeight:
    """``values`` [K, N] (float32, or int8 holding int8 / int4 levels) and how to dequantize them.

    ``scale``: None (float), [N] per output channel (``block`` 0), or [ceil(K / block), N] with one
    scale per ``block`` inputs of each output channel.
    """

    values: np.ndarray
    scale: np.ndarray | None = None
    bits: int = 32
    block: int = 0

    @property
    def shape(self) -> tuple[int, int]:
        """[K, N]."""
        k, n = self.values.shape
        return int(k), int(n)

    def dequantized(self) -> np.ndarray:
        """The float32 weight [K, N] that ``DequantizeLinear`` reconstructs."""
        values: np.ndarray = self.values.astype(np.float32)
        if self.scale is None:
            return values
        if self.block:
            rows = np.repeat(self.scale, self.block, axis=0)[: values.shape[0]]
            values *= rows
        else:
            values *= self.scale[None, :]
        return values

    @staticmethod
    def concatenated(parts: list[QWeight]) -> QWeight:
        """One [K, sum N] weight of MatMuls sharing an input (their scales concatenate exactly)."""
        first = parts[0]
        if any(
            (p.bits, p.block, p.scale is None) != (first.bits, first.block, first.scale is None)
            for p in parts
        ):
            raise ValueError("weights quantized differently cannot be concatenated")
        values = np.concatenate([p.values for p in parts], axis=1)
        if first.scale is None:
            return QWeight(values)
        scale = np.concatenate([p.scale for p in parts if p.scale is not None], axis=-1)
        return QWeight(values, scale, first.bits, first.block)


_COLUMNS = 8192  # output channels quantized at once: a [K, 150k] head never gets float copies


def _by_columns(
    quantize: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], w: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``quantize`` applied to slices of output channels (each channel is independent)."""
    if w.shape[1] <= _COLUMNS:
        return quantize(w)
    parts = [quantize(w[:, start : start + _COLUMNS]) for start in range(0, w.shape[1], _COLUMNS)]
    return np.concatenate([q for q, _ in parts], axis=1), np.concatenate(
        [s for _, s in parts], axis=-1
    )


def int8_rows(table: np.ndarray, block: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 of ``table`` [V, E] (the embedding), by slices: one scale per row [V], or
    per ``block`` columns of each row [V, E / block] (``block`` must divide E)."""
    if block:
        q, scale = _by_columns(lambda part: blocked_int8(part, block, None), table.T)
        return np.ascontiguousarray(q.T), np.ascontiguousarray(scale.T)
    q, scale = _by_columns(lambda part: _per_channel(part, 1, None), table.T)
    return np.ascontiguousarray(q.T), scale


def float_weight(w: np.ndarray) -> QWeight:
    """``w`` [K, N] kept as float32."""
    return QWeight(np.ascontiguousarray(w, dtype=np.float32))


def int8_weight(w: np.ndarray, block: int, moments: np.ndarray | None) -> QWeight:
    """Symmetric int8 of ``w`` [K, N]: per output channel (``block`` 0) or per ``block`` inputs;
    clipping chosen on ``moments`` [K] (mean square of each input channel) when given."""
    if block:
        q, scale = _by_columns(lambda part: blocked_int8(part, block, moments), w)
        return QWeight(q, scale, 8, block)
    q, scale = _by_columns(lambda part: _per_channel(part, 1, moments), w)
    return QWeight(q, scale, 8, 0)


def int4_weight(
    w: np.ndarray,
    block: int,
    solved: tuple[np.ndarray, np.ndarray] | None,
    moments: np.ndarray | None = None,
) -> QWeight:
    """Symmetric int4 of ``w`` [K, N] in blocks of ``block`` inputs: round to nearest (clipping
    chosen on ``moments`` [K] when given), or the ``solved`` levels and scales (GPTQ)."""
    q, scale = (
        solved
        if solved is not None
        else _by_columns(lambda part: rtn_int4(part, block, moments), w)
    )
    return QWeight(q.astype(np.int8), scale.astype(np.float32), 4, block)
