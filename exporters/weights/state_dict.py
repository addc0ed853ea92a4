"""Weights already in memory (or memory-mapped by ``torch.load(mmap=True)``): a state dict."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Union

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["StateDictWeights"]

_Tensor = Union["torch.Tensor", np.ndarray]


class StateDictWeights:
    """A mapping of Hugging Face names to torch tensors or numpy arrays, read as float32 copies.

    ``tie_word_embeddings``: the model reuses its embedding as LM head, so ``lm_head.weight`` is
    not listed (a ``model.state_dict()`` holds it as a second name of the embedding).
    """

    def __init__(self, state: Mapping[str, _Tensor], *, tie_word_embeddings: bool = False) -> None:
        self._state = {
            name: value
            for name, value in state.items()
            if not (tie_word_embeddings and name == "lm_head.weight")
        }

    def names(self) -> frozenset[str]:
        """Every tensor name."""
        return frozenset(self._state)

    def shape(self, name: str) -> tuple[int, ...]:
        """The tensor's shape."""
        return tuple(int(n) for n in self._tensor(name).shape)

    def get(self, name: str) -> np.ndarray:
        """A float32 C-contiguous copy of ``name`` (the mapping is never written through)."""
        value = self._tensor(name)
        if isinstance(value, np.ndarray):
            return np.array(value, dtype=np.float32, order="C", copy=True)
        import torch

        copy = value.detach().to(device="cpu", dtype=torch.float32, copy=True)
        return np.ascontiguousarray(copy.numpy())

    def close(self) -> None:
        """Drop the references to the tensors (a memory-mapped file closes with the last one)."""
        self._state = {}

    def _tensor(self, name: str) -> _Tensor:
        try:
            return self._state[name]
        except KeyError:
            raise KeyError(f"no tensor {name!r} in the state dict") from None
