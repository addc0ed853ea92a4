"""A weight source that refuses NaN and infinite values, naming the tensor: such a checkpoint is
broken (a diverged training run, a bad conversion), and its export would fail later as a parity
mismatch that looks like the exporter's fault."""

from __future__ import annotations

import numpy as np

from edge_sdk.errors import ExportError
from edge_sdk.exporters.weights.source import WeightSource

__all__ = ["FiniteWeights", "check_finite"]

_CHUNK = 1 << 20  # values checked at a time: no full-size temporary


def check_finite(name: str, values: np.ndarray, where: str) -> None:
    """Raise :class:`~edge_sdk.ExportError` naming ``name`` when ``values`` holds NaN or
    infinity."""
    flat = values.reshape(-1)
    if np.isfinite(flat.sum(dtype=np.float64)):  # one pass, no copy; float32 values cannot
        return  # overflow a float64 sum, so only NaN or infinity makes it non-finite
    nan = inf = 0
    for start in range(0, flat.size, _CHUNK):
        part = flat[start : start + _CHUNK]
        nan += int(np.isnan(part).sum())
        inf += int(np.isinf(part).sum())
    found = ", ".join(
        f"{count} {kind}" for count, kind in ((nan, "NaN"), (inf, "infinite")) if count
    )
    raise ExportError(
        f"{name} in {where} holds {found} value{'s' if nan + inf > 1 else ''} (of {flat.size}): "
        "the input checkpoint is broken, not the export; use a checkpoint saved before the "
        "values diverged, or convert or download it again"
    )


class FiniteWeights:
    """``inner``, each tensor checked by :func:`check_finite` as it is read."""

    def __init__(self, inner: WeightSource, where: str) -> None:
        self.inner = inner
        self.where = where

    def names(self) -> frozenset[str]:
        """Every tensor name of ``inner``."""
        return self.inner.names()

    def shape(self, name: str) -> tuple[int, ...]:
        """The shape of ``name``, unread."""
        return self.inner.shape(name)

    def get(self, name: str) -> np.ndarray:
        """``name`` as ``inner`` reads it, checked."""
        values = self.inner.get(name)
        check_finite(name, values, self.where)
        return values

    def close(self) -> None:
        """Close ``inner``."""
        self.inner.close()
