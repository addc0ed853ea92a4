"""The fused graph in the accuracy gate: every position's logits of the evaluation windows.

The fused graph computes its LM head on the last position only, so :class:`FusedWindows`
decodes the windows one token at a time, several windows side by side (one row each, as the
runtime's continuous batching runs them), and answers ``run(window)`` like an ``OrtModel``
(:class:`~edge_sdk.exporters.evaluate.LogitsModel`) from the logits it kept. It keeps at most
``budget`` bytes of logits: the windows are decoded in groups that fit, in the order asked.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_sdk.config import ModelConfig
from edge_sdk.errors import ExportError
from edge_sdk.exporters.fused_graph_check import FusedSession

__all__ = ["FusedWindows"]

_BUDGET = 256 * 2**20  # bytes of kept logits (a group of windows)


class FusedWindows:
    """``windows`` through the fused graph at ``path`` with the runtime's ``session_config``."""

    def __init__(
        self,
        path: Path,
        config: ModelConfig,
        session_config: dict[str, str],
        windows: list[list[int]],
        budget: int = _BUDGET,
    ) -> None:
        self._windows = windows
        longest = max((len(w) for w in windows), default=1)
        self._group = max(1, budget // (4 * longest * config.vocab_size))
        self._session = FusedSession(path, config, longest, session_config)
        self._kept: dict[tuple[int, ...], np.ndarray] = {}
        self._next = 0  # the first window not decoded yet

    def run(self, input_ids: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """Logits [1, S, V] of the window ``input_ids`` [1, S]."""
        key = tuple(int(t) for t in input_ids[0])
        while key not in self._kept and self._next < len(self._windows):
            self._decode(self._windows[self._next : self._next + self._group])
            self._next += self._group
        logits = self._kept.pop(key, None)
        if logits is None:
            raise ExportError("internal: the evaluation window was not given to FusedWindows")
        return logits[None], []

    def _decode(self, group: list[list[int]]) -> None:
        """Every position's logits of ``group``, one token per row and step (a shorter window's
        row goes on with token 0 to the end, its logits dropped)."""
        longest = max(len(w) for w in group)
        self._session.reset(len(group), longest)
        ids = np.zeros((len(group), longest), np.int64)
        for row, window in enumerate(group):
            ids[row, : len(window)] = window
        out = np.empty((len(group), longest, self._session.config.vocab_size), np.float32)
        for step in range(longest):
            out[:, step] = self._session.run_rows(ids[:, step : step + 1])
        for row, window in enumerate(group):
            self._kept[tuple(window)] = out[row, : len(window)]
