"""Parity of the exported float graph with the PyTorch model: prefill, then decode steps."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from edge_sdk.errors import ExportError
from edge_sdk.exporters.model import LiteForCausalLM
from edge_sdk.exporters.ort_check import OrtModel

__all__ = ["PARITY_TOLERANCE", "ParityReport", "check_parity"]

# max |onnx - torch| / max(1, max |torch logits|): float32 rounding, not a model error.
PARITY_TOLERANCE = 1e-4


@dataclass(frozen=True)
class ParityReport:
    """Largest relative logit difference of the ONNX graph against PyTorch, per phase."""

    prefill: float
    decode: float
    steps: int

    @property
    def worst(self) -> float:
        """The larger of the two."""
        return max(self.prefill, self.decode)


def _relative(onnx_logits: np.ndarray, torch_logits: torch.Tensor) -> float:
    ref = torch_logits.detach().numpy()
    return float(np.abs(onnx_logits - ref).max() / max(1.0, float(np.abs(ref).max())))


def check_parity(
    model: LiteForCausalLM, onnx_model: OrtModel, prompt: list[int], decode_steps: int = 4
) -> ParityReport:
    """Compare a prefill of ``prompt`` and greedy decode steps with a past; raise if off."""
    ids = torch.tensor([prompt], dtype=torch.int64)
    with torch.no_grad():
        ref_logits, ref_past = model(ids)
    logits, past = onnx_model.run(ids.numpy())
    prefill = _relative(logits, ref_logits)
    decode = 0.0
    next_id = torch.argmax(ref_logits[:, -1:], dim=-1)
    for _ in range(decode_steps):
        with torch.no_grad():
            ref_logits, ref_past = model(next_id, past_key_values=ref_past)
        logits, past = onnx_model.run(next_id.numpy(), past)
        decode = max(decode, _relative(logits, ref_logits))
        next_id = torch.argmax(ref_logits[:, -1:], dim=-1)
    report = ParityReport(prefill, decode, decode_steps)
    if not report.worst <= PARITY_TOLERANCE:
        raise ExportError(
            f"the exported ONNX graph disagrees with PyTorch (relative logit difference "
            f"{report.worst:.2e} > {PARITY_TOLERANCE:.0e}); this is a bug in the exporter, please "
            "report it"
        )
    return report
