"""The streamed export's checks: the written graph against the layer-by-layer PyTorch reference
(parity), and the float reference for the accuracy gate."""

from __future__ import annotations

import numpy as np
import torch

from edge_sdk.errors import ExportError
from edge_sdk.exporters.ort_check import OrtModel
from edge_sdk.exporters.stream.graphs import Table
from edge_sdk.exporters.stream.heads import compact, head_logits
from edge_sdk.exporters.verify import PARITY_TOLERANCE, ParityReport

__all__ = ["FloatReference", "check_graph_parity"]


def _relative(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got - want).max() / max(1.0, float(np.abs(want).max())))


def check_graph_parity(
    model: OrtModel, prompt: list[int], decode: int, reference: np.ndarray
) -> ParityReport:
    """Prefill all but the last ``decode`` tokens of ``prompt``, then decode those one at a time
    on the graph's KV cache; compare every position's logits with ``reference`` [len, V] (the
    PyTorch layers with the same stored weights), ``model`` computing in float32 too
    (:data:`~edge_sdk.exporters.fused_graph_check.FLOAT_COMPUTE`). Raises
    :class:`ExportError` when off."""
    split = max(1, len(prompt) - decode)
    logits, past = model.run(np.array([prompt[:split]], np.int64))
    prefill = _relative(logits[0], reference[:split])
    worst_decode = 0.0
    for step, token in enumerate(prompt[split:]):
        logits, past = model.run(np.array([[token]], np.int64), past)
        worst_decode = max(worst_decode, _relative(logits[0, -1], reference[split + step]))
    report = ParityReport(prefill, worst_decode, len(prompt) - split)
    if not report.worst <= PARITY_TOLERANCE:
        raise ExportError(
            f"the exported ONNX graph disagrees with the PyTorch reference (relative logit "
            f"difference {report.worst:.2e} > {PARITY_TOLERANCE:.0e}); this is a bug in the "
            "exporter, please report it"
        )
    return report


class FloatReference:
    """The float model's logits on the evaluation windows, from the final hidden states the layer
    pass kept and the float LM head ``head`` [V, E]; ``run`` answers like an ``OrtModel``."""

    def __init__(
        self, windows: list[list[int]], hidden: list[torch.Tensor], head: np.ndarray
    ) -> None:
        self._hidden = {tuple(w): h for w, h in zip(windows, hidden, strict=True)}
        self._head = Table(compact(head))

    def run(self, input_ids: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """Logits [1, S, V] of the window ``input_ids`` [1, S]."""
        hidden = self._hidden.get(tuple(int(t) for t in input_ids[0]))
        if hidden is None:
            raise ExportError("internal: the evaluation window was not in the layer pass")
        return head_logits(hidden, self._head, None)[None], []
