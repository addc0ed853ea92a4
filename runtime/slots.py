"""KV-cache slots: several sequences in one model session, decoded together.

A :class:`SlotModel` holds ``slots`` rows of KV cache, each ``capacity`` positions long. A new
sequence is prefilled into its own row (batch 1, any number of tokens on top of what the row
holds); :meth:`SlotModel.decode` then runs one token for every busy row in one model call, so the
weights are read once for all of them (decode is bound by memory bandwidth: a batch of 4 costs
little more than one sequence).

Backends that can run rows of different lengths in one call give one through
:meth:`~edge_sdk.runtime.Backend.slot_model` (onnxruntime's fused CPU graph:
:mod:`edge_sdk.runtime.ort_slots`). Every other backend is served by :class:`SingleSlotModel`,
the documented fallback: one row, requests take turns.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from edge_sdk.errors import GenerationError
from edge_sdk.runtime.backend import Backend
from edge_sdk.shapes import PREFILL_CHUNK

__all__ = ["PREFILL_CHUNK", "SingleSlotModel", "SlotModel"]


class SlotModel(ABC):
    """``slots`` KV-cache rows of ``capacity`` positions over one model session."""

    #: Whether :meth:`decode` runs all busy rows in one model call.
    batched: bool = True
    #: Whether :meth:`prefill_all` returns every row from one call per chunk (speculative
    #: decoding checks its drafts that way); the default :meth:`prefill_all` runs a call per token.
    multi_row: bool = False

    def __init__(self, slots: int, capacity: int) -> None:
        if slots < 1:
            raise GenerationError(f"slots must be at least 1, got {slots}")
        self.slots = slots
        self.capacity = capacity
        self.lengths = [0] * slots  # positions held by each row

    @abstractmethod
    def _prefill(self, slot: int, ids: np.ndarray) -> np.ndarray:
        """Run ``ids`` [n] on top of row ``slot``; the last position's logits [vocab]."""

    @abstractmethod
    def _decode(self, slots: Sequence[int], tokens: Sequence[int]) -> np.ndarray:
        """One token per row in ``slots``; logits [max(slots) + 1, vocab], row s for slot s."""

    @property
    @abstractmethod
    def nbytes(self) -> int:
        """Bytes of KV cache allocated for all rows."""

    @property
    @abstractmethod
    def device(self) -> str:
        """What runs the model, in words."""

    def prefill(self, slot: int, ids: np.ndarray | Sequence[int]) -> np.ndarray:
        """Run ``ids`` on top of what row ``slot`` holds; the last position's logits [vocab]
        (valid until the next call)."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if self.lengths[slot] + ids.size > self.capacity:
            raise GenerationError(
                f"{ids.size} more tokens do not fit slot {slot}: "
                f"{self.lengths[slot]} of {self.capacity} positions are used"
            )
        logits = self._prefill(slot, ids)
        self.lengths[slot] += ids.size
        return logits

    def prefill_all(self, slot: int, ids: np.ndarray | Sequence[int]) -> np.ndarray:
        """As :meth:`prefill`, but every position's logits [n, vocab] (for prompt logprobs).

        This default runs the tokens one at a time (exact for any slot model: n model calls
        instead of one per chunk)."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        rows = [np.array(self.prefill(slot, ids[j : j + 1]), copy=True) for j in range(ids.size)]
        return np.stack(rows)

    def decode(self, slots: Sequence[int], tokens: Sequence[int]) -> np.ndarray:
        """Run one token per row (``tokens[i]`` on row ``slots[i]``); logits
        [max(slots) + 1, vocab] where row s belongs to slot s (valid until the next call)."""
        full = [s for s in slots if self.lengths[s] >= self.capacity]
        if full:
            raise GenerationError(f"slots {full} are full ({self.capacity} positions)")
        logits = self._decode(slots, tokens)
        for s in slots:
            self.lengths[s] += 1
        return logits

    def release(self, slot: int) -> None:
        """Forget row ``slot``'s positions (the memory stays allocated)."""
        self.lengths[slot] = 0

    def truncate(self, slot: int, length: int) -> bool:
        """Keep the first ``length`` positions of row ``slot`` (the prompt cache reuses a
        prefix); False when that cannot be done exactly (a hybrid model's state cannot be
        rewound): the row is then unchanged and the caller releases it."""
        if not 0 <= length <= self.lengths[slot]:
            raise GenerationError(
                f"cannot keep {length} positions of slot {slot}: it holds {self.lengths[slot]}"
            )
        if length == self.lengths[slot]:
            return True
        if not self._truncate(slot, length):
            return False
        self.lengths[slot] = length
        return True

    def _truncate(self, slot: int, length: int) -> bool:
        """Cut row ``slot`` to ``length`` (< its length) positions; False when it cannot.

        An optional hook: the default cuts nothing (the caller releases the row)."""
        return False

    def reusable(self, slot: int, length: int) -> int:
        """The most positions, at most ``length``, that row ``slot`` can keep by
        :meth:`truncate` (0: none). The default: ``length``; a row whose state cannot be
        rewound says less (its length, or a :meth:`checkpoint`)."""
        return min(length, self.lengths[slot])

    def checkpoint(self, slot: int) -> None:
        """Remember row ``slot``'s state at its current length, so that :meth:`truncate` can
        cut back there later (an optional hook: a no-op where any cut is exact)."""
        return None

    def mark(self, slot: int) -> None:
        """Remember row ``slot``'s state at its current length before a speculative verify
        step, so that :meth:`truncate` can cut back there (one mark per model: one row
        speculates at a time; it leaves :meth:`checkpoint` alone). An optional hook: a no-op
        where any cut is exact."""
        return None

    def copy_out(self, slot: int) -> list[np.ndarray] | None:
        """Copies of row ``slot``'s positions, one array per cache tensor, for
        :meth:`copy_in` later (the prompt cache's host store); None where rows cannot be
        copied exactly (the default)."""
        return None

    def copy_in(self, slot: int, tensors: Sequence[np.ndarray], length: int) -> bool:
        """Make row ``slot`` hold the first ``length`` positions of ``tensors`` (from
        :meth:`copy_out`); False where it cannot (the default)."""
        return False

    def close(self) -> None:
        """Free the rows' memory (an optional hook: the default holds nothing to free)."""
        return None


class SingleSlotModel(SlotModel):
    """One row over any :class:`~edge_sdk.runtime.Backend` (its own KV cache)."""

    batched = False
    multi_row = True  # the backend's forward_all (its speculation_problem says when it cannot)

    def __init__(self, backend: Backend, capacity: int) -> None:
        super().__init__(1, capacity)
        self.backend = backend
        backend.allocate(capacity)

    def _prefill(self, slot: int, ids: np.ndarray) -> np.ndarray:
        return self.backend.forward(ids)

    def _decode(self, slots: Sequence[int], tokens: Sequence[int]) -> np.ndarray:
        return self.backend.forward(np.asarray(tokens, dtype=np.int64))[None, :]

    def prefill_all(self, slot: int, ids: np.ndarray | Sequence[int]) -> np.ndarray:
        """The backend's :meth:`~edge_sdk.runtime.Backend.forward_all` (one call per chunk on
        the standard graph)."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        rows = self.backend.forward_all(ids)
        self.lengths[slot] += ids.size
        return rows

    def release(self, slot: int) -> None:
        super().release(slot)
        self.backend.reset()

    def _truncate(self, slot: int, length: int) -> bool:
        return self.backend.truncate(length)

    def mark(self, slot: int) -> None:
        self.backend.checkpoint()

    @property
    def nbytes(self) -> int:
        return self.backend.cache_bytes

    @property
    def device(self) -> str:
        return self.backend.device
