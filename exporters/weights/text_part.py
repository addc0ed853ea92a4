"""The text decoder's tensors of a vision-language checkpoint (Gemma 3 4B and up), under the
plain decoder's names: ``language_model.model.layers.0...`` (the Hub's layout) or
``model.language_model.layers.0...`` (transformers 5's in-memory one) -> ``model.layers.0...``.
The vision tower and the projector are left out (:attr:`TextPartWeights.left_out` counts them).
"""

from __future__ import annotations

import numpy as np

from edge_sdk.exporters.weights.source import WeightSource

__all__ = ["TextPartWeights"]

_DECODER_PREFIXES = ("language_model.model.", "model.language_model.")
_HEADS = ("language_model.lm_head.weight", "lm_head.weight")


class TextPartWeights:
    """A :class:`WeightSource` over the text decoder's tensors of ``inner``."""

    def __init__(self, inner: WeightSource, tie_word_embeddings: bool) -> None:
        self._inner = inner
        self._stored: dict[str, str] = {}  # plain name -> name in the files
        for name in inner.names():
            prefix = next((p for p in _DECODER_PREFIXES if name.startswith(p)), None)
            if prefix is not None:
                self._stored["model." + name[len(prefix) :]] = name
            elif name in _HEADS and not tie_word_embeddings:
                self._stored["lm_head.weight"] = name
        self.left_out = len(inner.names()) - len(self._stored)

    def names(self) -> frozenset[str]:
        """The decoder's tensors, plain names."""
        return frozenset(self._stored)

    def shape(self, name: str) -> tuple[int, ...]:
        """The shape of ``name`` as stored."""
        return self._inner.shape(self._name(name))

    def get(self, name: str) -> np.ndarray:
        """``name`` read from the files."""
        return self._inner.get(self._name(name))

    def close(self) -> None:
        """Close the files."""
        self._inner.close()

    def _name(self, name: str) -> str:
        try:
            return self._stored[name]
        except KeyError:
            raise KeyError(f"no tensor {name!r} in the checkpoint's text decoder") from None
