"""Agreement of a backend with the reference (``ort-cpu``) on the same prompt.

Two figures over the first N generated ids: the **matching prefix** (the backend's own greedy
ids equal to the reference's before the first difference: one near-tie resolved the other way
ends it, even between two correct graphs) and, fed the reference's ids one decode step at a
time, the **top-1 agreement** (the share of positions whose argmax is the reference's id) and
the largest logit difference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = ["Agreement", "Reference", "agreement", "teacher_forced_logits"]


@dataclass(frozen=True)
class Reference:
    """The reference backend's greedy ids and its teacher-forced logits [n, vocab]."""

    name: str
    tokens: list[int]
    logits: np.ndarray


@dataclass(frozen=True)
class Agreement:
    """A backend's greedy ids against the reference's over the first ``tokens`` ids."""

    reference: str
    tokens: int
    matching_prefix: int  # generated ids equal to the reference's before the first difference
    top1_agreement: float  # teacher-forced on the reference's ids: share of equal argmax
    max_logit_diff: float  # teacher-forced: largest |logit - reference logit|

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "matching_prefix_fraction": self.matching_prefix / self.tokens}


def teacher_forced_logits(backend: Any, prompt_ids: Sequence[int], ids: Sequence[int]) -> Any:
    """Logits [len(ids), vocab] after the prompt and after each of ``ids`` but the last, one
    decode step at a time on a runtime ``Backend`` (the reference's ids, whatever this backend
    would have picked); the backend's cache is left empty."""
    backend.reset()
    backend.allocate(len(prompt_ids) + len(ids))
    rows = [np.array(backend.forward(np.asarray(prompt_ids, dtype=np.int64)), copy=True)]
    for token in ids[:-1]:
        rows.append(np.array(backend.forward(np.asarray([token], dtype=np.int64)), copy=True))
    backend.reset()
    return np.stack(rows)


def agreement(reference: Reference, generated: Sequence[int], logits: Any) -> Agreement:
    """``generated`` ids and teacher-forced ``logits`` against the reference."""
    n = min(len(reference.tokens), len(generated), len(logits))
    prefix = 0
    while prefix < n and generated[prefix] == reference.tokens[prefix]:
        prefix += 1
    top1 = np.argmax(logits[:n], axis=-1) == np.asarray(reference.tokens[:n])
    diff = np.abs(np.asarray(logits[:n], np.float32) - reference.logits[:n])
    return Agreement(reference.name, n, prefix, float(top1.mean()), float(diff.max()))
