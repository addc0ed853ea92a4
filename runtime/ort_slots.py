"""KV-cache slots on onnxruntime's fused graphs: ``model.ort.onnx`` on the CPU EP,
``model.cuda.onnx`` (fp16) on the CUDA EP.

The graph's ``GroupQueryAttention`` reads a right-padded cache with one length per row
(``seqlens_k``), so rows of different lengths decode in one call. Each cache tensor is one
buffer [slots, kv_heads, capacity, head_dim]; row s is the contiguous block at offset
s * kv_heads * capacity * head_dim, so:

* a prefill binds row s alone as a batch-1 cache [1, kv_heads, capacity, head_dim] (the graph
  allows a sequence longer than one token at batch 1 only);
* a decode binds rows 0..B-1 (B = the highest busy row + 1) as [B, ...]. A row in that range that
  is not decoding (free, or between prefill chunks) gets ``seqlens_k`` = its length, so the step
  writes one throw-away position just past its data, which the row's next write replaces.

A hybrid model's state tensors (Qwen3.5's linear layers: a fixed-size conv window and recurrent
state per row) are read from one buffer [slots, ...] and written to another; after each call the
rows that really ran (the prefilled slot, the decoding slots) are copied back, so an idle row in
a decode batch keeps its state, and a released row's state is zeroed.

Cutting a row to fewer positions (the prompt cache) only lowers its length: ``seqlens_k`` hides
the positions beyond, which the next writes replace. A hybrid row's state cannot be rewound: it
is cut only to a :meth:`~FusedSlotModel.checkpoint` (one per row: a copy of its states, taken by
the engine when a prompt's prefill ends) or to the :meth:`~FusedSlotModel.mark` of a speculative
verify step (one row's copy: one row speculates at a time), whose states are copied back.

The session is the backend's (weights are shared with the generator); only the cache is new.
Its buffers live at the backend's :class:`~edge_sdk.runtime.ort_buffers.Place` (host numpy
arrays on ``ort-cpu``; ``OrtValue`` s on the GPU for ``ort-cuda``, one per tensor, bound at row
offsets) in the graph's cache element type (float32, or float16 for the CUDA graph). Token ids,
``seqlens_k``, ``total_sequence_length`` and the logits are host arrays: a decode step copies
B ids and B lengths in and B float32 logits rows out; the cache never leaves the device. Row
copies (hybrid states, checkpoints, the host store's :meth:`~FusedSlotModel.copy_out` /
:meth:`~FusedSlotModel.copy_in`) are byte copies between addresses (:meth:`Place.copy`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from edge_sdk.errors import GenerationError
from edge_sdk.manifest import IoNames
from edge_sdk.onnx_io import LOGITS_TO_KEEP
from edge_sdk.runtime.ort_buffers import HOST, Buffer, Place, element_type
from edge_sdk.runtime.slots import SlotModel
from edge_sdk.shapes import PREFILL_CHUNK

__all__ = ["FusedSlotModel"]


class FusedSlotModel(SlotModel):
    """``slots`` rows over a session of a fused graph (see the module docstring)."""

    def __init__(
        self,
        session: Any,
        shapes: Sequence[tuple[int | None, ...]],
        vocab: int,
        slots: int,
        capacity: int,
        device: str,
        io_names: IoNames | None = None,
        place: Place = HOST,
    ) -> None:
        super().__init__(slots, capacity)
        self._session = session
        self._device = device
        self._place = place
        self._io = io_names or IoNames.fused(len(shapes) // 2)  # the bundle's, else conventional
        self._past, self._present = self._io.past, self._io.present
        self._cache_type = element_type(session, self._past[0])
        self._shapes = [tuple(shape) for shape in shapes]
        rows = [(slots, *(capacity if d is None else d for d in shape)) for shape in shapes]
        # read by each step (K/V: written in place too)
        self._buffers = [place.allocate(row, self._cache_type) for row in rows]
        self._written = [  # where each tensor's step writes: in place for K/V
            b if None in shape else place.allocate(b.shape, self._cache_type)
            for b, shape in zip(self._buffers, shapes, strict=True)
        ]
        self._states = [i for i, shape in enumerate(shapes) if None not in shape]
        self._snapshots = [
            place.allocate(self._buffers[i].shape, self._cache_type) for i in self._states
        ]
        self._zeros = np.zeros(  # the source that clears a state row
            max((self._buffers[i].row_nbytes for i in self._states), default=0), np.uint8
        )
        self._checkpoints = [-1] * slots  # the length each row's snapshot was taken at
        self._marked = [  # one row's states, marked before a verify call
            place.allocate((1, *self._buffers[i].shape[1:]), self._cache_type) for i in self._states
        ]
        self._mark = (-1, -1)  # (row, length) of the marked states
        self._logits = np.zeros((slots, 1, vocab), np.float32)  # the backend checked the type
        self._ids = np.zeros((slots, 1), np.int64)
        self._seqlens = np.zeros(slots, np.int32)
        self._total = np.zeros((), np.int32)
        # the graph's optional input: logits for the last n positions (None: it predates it)
        defaults = {i.name for i in session.get_overridable_initializers()}
        self._keep = np.ones(1, np.int64) if LOGITS_TO_KEEP in defaults else None
        self._rows: np.ndarray | None = None  # prefill_all's output while it runs
        self.multi_row = self._keep is not None  # prefill_all: one call per chunk
        self._prefill_bind = session.io_binding()
        self._decode_bind = session.io_binding()
        self._decode_rows = 0  # the batch size the decode binding is bound for
        self._bind_positions(self._decode_bind)

    @property
    def nbytes(self) -> int:
        return (
            sum(b.nbytes for b in self._buffers)
            + sum(self._written[i].nbytes for i in self._states)
            + sum(s.nbytes for s in self._snapshots)
            + sum(m.nbytes for m in self._marked)
        )

    @property
    def device(self) -> str:
        return self._device

    def close(self) -> None:
        self._prefill_bind = self._decode_bind = None
        self._buffers, self._written, self._snapshots, self._marked = [], [], [], []

    def _copy_rows(self, dst: Buffer, src: Buffer, slots: Sequence[int]) -> None:
        for s in slots:
            self._place.copy(dst.row(s), src.row(s), src.row_nbytes)

    def release(self, slot: int) -> None:
        super().release(slot)
        self._checkpoints[slot] = -1
        if self._mark[0] == slot:
            self._mark = (-1, -1)
        for i in self._states:
            state = self._buffers[i]
            self._place.copy(state.row(slot), self._zeros.ctypes.data, state.row_nbytes)

    def reusable(self, slot: int, length: int) -> int:
        if not self._states:
            return super().reusable(slot, length)
        exact = [p for p in (self.lengths[slot], self._checkpoints[slot]) if 0 <= p <= length]
        return max(exact, default=0)

    def checkpoint(self, slot: int) -> None:
        for snapshot, i in zip(self._snapshots, self._states, strict=True):
            self._copy_rows(snapshot, self._buffers[i], (slot,))
        self._checkpoints[slot] = self.lengths[slot]

    def mark(self, slot: int) -> None:
        for marked, i in zip(self._marked, self._states, strict=True):
            self._place.copy(marked.row(0), self._buffers[i].row(slot), marked.row_nbytes)
        self._mark = (slot, self.lengths[slot])

    def _positions(self, index: int, slot: int, length: int, host: np.ndarray, out: bool) -> None:
        """Copy the first ``length`` positions of K/V tensor ``index``'s row ``slot`` to
        (``out``) or from the host array ``host`` [kv_heads, >= length, head_dim], one block
        per head."""
        buffer, shape = self._buffers[index], self._shapes[index]
        axis = shape.index(None)
        heads = math.prod(d for d in shape[:axis] if d is not None)
        position = math.prod(d for d in shape[axis + 1 :] if d is not None) * host.itemsize
        held, base = host.shape[axis], int(host.ctypes.data)
        for h in range(heads):
            device = buffer.row(slot) + h * self.capacity * position
            there = base + h * held * position
            if out:
                self._place.copy(there, device, length * position)
            else:
                self._place.copy(device, there, length * position)

    def copy_out(self, slot: int) -> list[np.ndarray] | None:
        if self._states:  # a state is not stored: only K/V rows are copied exactly
            return None
        length = self.lengths[slot]
        tensors = []
        for i, buffer in enumerate(self._buffers):
            shape = [length if d is None else d for d in self._shapes[i]]
            tensor = np.empty(shape, buffer.dtype)
            self._positions(i, slot, length, tensor, out=True)
            tensors.append(tensor)
        return tensors

    def copy_in(self, slot: int, tensors: Sequence[np.ndarray], length: int) -> bool:
        if self._states or length > self.capacity:
            return False
        for i, tensor in enumerate(tensors):
            host = np.ascontiguousarray(tensor, self._buffers[i].dtype)
            self._positions(i, slot, length, host, out=False)
        self.lengths[slot] = length
        return True

    def _truncate(self, slot: int, length: int) -> bool:
        if not self._states:
            return True
        if length == self._checkpoints[slot]:
            saved = [snapshot.row(slot) for snapshot in self._snapshots]
            if self._mark[0] == slot and length < self._mark[1]:
                self._mark = (-1, -1)  # its positions will be written anew
        elif (slot, length) == self._mark:
            saved = [marked.row(0) for marked in self._marked]
        else:
            return False
        for source, i in zip(saved, self._states, strict=True):
            state = self._buffers[i]
            self._place.copy(state.row(slot), source, state.row_nbytes)
        return True

    def _keep_states(self, slots: Sequence[int]) -> None:
        """Copy the states the last call wrote for ``slots`` into the buffers the next one reads."""
        for i in self._states:
            self._copy_rows(self._buffers[i], self._written[i], slots)

    def _bind_positions(self, bind: Any) -> None:
        bind.bind_input(
            self._io.total_sequence_length, "cpu", 0, np.int32, [], self._total.ctypes.data
        )

    def _bind_rows(self, bind: Any, first: int, rows: int) -> None:
        place, kind = self._place, self._cache_type
        tensors = zip(self._past, self._present, self._buffers, self._written, strict=True)
        for past, present, read, written in tensors:
            shape = [rows, *read.shape[1:]]
            where = (place.device, place.device_id, kind, shape)
            bind.bind_input(past, *where, read.row(first))
            bind.bind_output(present, *where, written.row(first))
        bind.bind_input(
            self._io.seqlens_k, "cpu", 0, np.int32, [rows], self._seqlens.ctypes.data + 4 * first
        )
        bind.bind_output(
            self._io.logits,
            "cpu",
            0,
            np.float32,
            [rows, 1, self._logits.shape[2]],
            self._logits.ctypes.data + first * self._logits[0].nbytes,
        )

    def _run(self, bind: Any) -> None:
        try:
            self._session.run_with_iobinding(bind)
        except Exception as exc:  # onnxruntime's own error types
            raise GenerationError(f"onnxruntime failed on the batched decode: {exc}") from exc

    def _prefill(self, slot: int, ids: np.ndarray) -> np.ndarray:
        bind = self._prefill_bind
        self._bind_positions(bind)
        self._bind_rows(bind, slot, 1)
        length, rows, keep = self.lengths[slot], self._rows, self._keep
        if rows is not None:  # prefill_all: every position's logits, logits_to_keep per chunk
            assert keep is not None
            bind.bind_input(LOGITS_TO_KEEP, "cpu", 0, np.int64, [1], keep.ctypes.data)
        try:
            for start in range(0, ids.size, PREFILL_CHUNK):
                chunk = np.ascontiguousarray(ids[start : start + PREFILL_CHUNK]).reshape(1, -1)
                n = chunk.shape[1]
                total = length + start + n
                self._seqlens[slot], self._total[()] = total - 1, total
                bind.bind_input(self._io.input_ids, "cpu", 0, np.int64, [1, n], chunk.ctypes.data)
                if rows is not None and keep is not None:
                    keep[0] = n
                    out = rows[start : start + n]
                    shape = [1, n, rows.shape[1]]
                    bind.bind_output(self._io.logits, "cpu", 0, np.float32, shape, out.ctypes.data)
                self._run(bind)
                self._keep_states((slot,))
        finally:
            if keep is not None:
                keep[0] = 1
        last: np.ndarray = self._logits[slot, 0] if rows is None else rows[-1]
        return last

    def prefill_all(self, slot: int, ids: np.ndarray | Sequence[int]) -> np.ndarray:
        """As :meth:`prefill`, but every position's logits [n, vocab], one model call per
        chunk (the graph's ``logits_to_keep``); one call per token on a graph without it."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if self._keep is None:
            return super().prefill_all(slot, ids)
        self._rows = np.empty((ids.size, self._logits.shape[2]), np.float32)
        try:
            self.prefill(slot, ids)  # checks the room; _prefill writes every row into _rows
            return self._rows
        finally:
            self._rows = None

    def _decode(self, slots: Sequence[int], tokens: Sequence[int]) -> np.ndarray:
        rows = max(slots) + 1
        bind = self._decode_bind
        if rows != self._decode_rows:
            self._bind_rows(bind, 0, rows)
            bind.bind_input(
                self._io.input_ids, "cpu", 0, np.int64, [rows, 1], self._ids.ctypes.data
            )
            self._decode_rows = rows
        lengths = self.lengths
        self._seqlens[:rows] = lengths[:rows]  # idle rows: one throw-away write past their data
        self._ids[:rows] = 0
        for s, token in zip(slots, tokens, strict=True):
            self._ids[s, 0] = token
        self._total[()] = max(lengths[:rows]) + 1
        self._run(bind)
        self._keep_states(slots)
        return self._logits[:rows, 0]
