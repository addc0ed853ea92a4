"""Where an export reads its weights from: named float tensors, read one at a time on demand.

A :class:`WeightSource` never holds the whole model: safetensors files are memory-mapped, a GGUF
tensor is dequantized when it is asked for, a ``model.pt`` is loaded with ``mmap=True``. Names and
layout are Hugging Face's (``model.layers.0.self_attn.q_proj.weight``, Linear weights
``[out, in]``), whatever the file's own convention.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

__all__ = ["WeightSource"]


class WeightSource(Protocol):
    """Named float tensors of a checkpoint, read on demand."""

    def names(self) -> frozenset[str]:
        """Every tensor name the source holds (Hugging Face names)."""
        ...

    def shape(self, name: str) -> tuple[int, ...]:
        """The shape of ``name`` (Hugging Face layout) without reading its values."""
        ...

    def get(self, name: str) -> np.ndarray:
        """``name`` as float32, C-contiguous, Hugging Face layout; a fresh array the caller owns.

        Raises :class:`~edge_sdk.errors.UnsupportedModelError` naming the tensor when its bytes
        cannot be read (a truncated file) or decoded.
        """
        ...

    def close(self) -> None:
        """Release the mapping (the arrays already returned stay valid)."""
        ...
