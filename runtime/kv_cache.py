"""The model's cache: buffers allocated once per generation, written in place by the model.

Each layer has two cache tensors (:func:`edge_sdk.onnx_io.cache_tensors`): an attention layer's
K and V [1, kv_heads, positions, head_dim], which grow by the positions each step adds, or a
linear-attention layer's conv window and recurrent state (Qwen3.5), whose size is fixed whatever
the context.

The standard graph reads ``past_*`` and writes ``present_*`` [1, kv_heads, past + n, head_dim]. A
slice of one [kv_heads, capacity, head_dim] buffer is not contiguous when kv_heads > 1, so past
and present cannot share memory. The cache therefore keeps two flat buffers per tensor, each big
enough for ``capacity`` positions: a step binds one as the past (read) and the other as the
present (written by the model directly, through I/O binding), then the two swap. Nothing is
copied through Python and nothing is allocated per token; the per-token host work is a fixed
number of pointer bindings.

The onnxruntime graph (``GroupQueryAttention``, see the exporter's ``fused_graph``) instead reads
and writes one [1, kv_heads, capacity, head_dim] buffer per K or V tensor in place
(``shared=True``): half the memory, and a decode step writes only its own position. A state
tensor keeps its two buffers there too (a graph of ordinary ops may write its output before it
has read all of its input): :attr:`KVCache.moving` lists the tensors whose buffers swap each step.
A state starts at zero: :meth:`KVCache.reset` clears it.

:meth:`KVCache.truncate` keeps the first n positions (the prompt cache reuses a prefix). In the
shared buffer that is only a shorter length (the positions beyond are overwritten by the next
step). In a ping-pong pair the past is laid out [kv_heads, length, head_dim] by its current
length, so a shorter past is a different layout: the first n positions of each head are copied
into the other buffer ([kv_heads, n, head_dim]) with the backend's ``copy`` (a memmove on the
host, a device-to-device copy for TensorRT), and the pair swaps. A state cannot be rewound by a
length: a cache with states truncates only to its own length, or to its :meth:`KVCache.checkpoint`
(a copy of the states taken at that length, copied back; speculative decoding takes one before it
checks drafts).
"""

from __future__ import annotations

import ctypes
import math
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["Allocator", "Clearer", "Copier", "KVCache", "clear_numpy", "copy_host"]

#: Allocates a flat float32 buffer of n elements; returns (owner kept alive, data pointer).
Allocator = Callable[[int], tuple[Any, int]]
#: Sets an allocated buffer (its owner, its element count) to zeros.
Clearer = Callable[[Any, int], None]
#: Copies ``nbytes`` from the source pointer to the destination pointer: (dst, src, nbytes).
Copier = Callable[[int, int, int], None]


def clear_numpy(owner: Any, _size: int) -> None:
    """Zero a host buffer (a numpy array)."""
    owner.fill(0)


def copy_host(dst: int, src: int, nbytes: int) -> None:
    """Copy between host buffers (the two never overlap here)."""
    ctypes.memmove(dst, src, nbytes)


class KVCache:
    """Past/present buffers for the cache tensors of shapes ``shapes`` (one sequence, no batch
    axis; ``None`` for the positions axis of K and V).

    Ping-pong pairs by default; one buffer per K or V tensor, read and written in place, when
    ``shared``. ``copy`` moves bytes between two buffers (:meth:`truncate` of a ping-pong
    cache needs it; without it such a cache only truncates to its own length or to 0).
    """

    def __init__(
        self,
        shapes: Sequence[tuple[int | None, ...]],
        capacity: int,
        allocate: Allocator,
        itemsize: int = 4,
        shared: bool = False,
        clear: Clearer = clear_numpy,
        copy: Copier | None = None,
    ) -> None:
        self.shapes = [tuple(shape) for shape in shapes]
        self.capacity = capacity
        self.shared = shared
        self.length = 0
        self._clear = clear
        self._copy = copy
        self._allocate = allocate
        self._itemsize = itemsize
        sizes = [math.prod(capacity if d is None else d for d in s) for s in self.shapes]
        copies = [1 if shared and None in s else 2 for s in self.shapes]
        buffers = [[allocate(n) for _ in range(c)] for n, c in zip(sizes, copies, strict=True)]
        self._owners = buffers  # keeps the memory alive
        self._sizes = sizes
        self._read = [b[0][1] for b in buffers]
        self._write = [b[-1][1] for b in buffers]
        #: Tensors whose past and present buffers swap after each step.
        self.moving = tuple(i for i, c in enumerate(copies) if c == 2)
        self._states = [i for i, s in enumerate(self.shapes) if None not in s]
        self.nbytes = sum(n * c for n, c in zip(sizes, copies, strict=True)) * itemsize
        self._snapshots: list[tuple[Any, int]] = []  # a copy of each state (checkpoint)
        self._checkpoint = -1  # the length the snapshots were taken at (-1: none)
        self._clear_states()

    def _positions(self, new: int) -> int:
        return self.capacity if self.shared else self.length + new

    def past_shapes(self) -> list[list[int]]:
        """Shape of each past tensor now: K/V [1, kv_heads, length (capacity if shared),
        head_dim], a state its fixed shape."""
        length = self._positions(0)
        return [[1, *(length if d is None else d for d in s)] for s in self.shapes]

    def present_shapes(self, new: int) -> list[list[int]]:
        """Shape of each present tensor after ``new`` positions (K/V: capacity if shared)."""
        length = self._positions(new)
        return [[1, *(length if d is None else d for d in s)] for s in self.shapes]

    @property
    def past_pointers(self) -> list[int]:
        """Buffers holding the cache now (bound as the model's past inputs)."""
        return self._read

    @property
    def present_pointers(self) -> list[int]:
        """Buffers the next step writes (bound as the model's present outputs)."""
        return self._write

    def advance(self, new: int) -> None:
        """Record that a step wrote ``new`` positions into the present buffers; swap roles."""
        self.length += new
        for i in self.moving:
            self._read[i], self._write[i] = self._write[i], self._read[i]

    def reset(self) -> None:
        """Forget every position and zero the states (the memory stays allocated)."""
        self.length = 0
        self._checkpoint = -1
        self._clear_states()

    def checkpoint(self) -> None:
        """Copy the states as they are now, so that :meth:`truncate` can come back to this
        length exactly (a no-op for a cache without states; one checkpoint at a time). The
        copies are allocated by the first call (:attr:`nbytes` grows by one set of states)."""
        if not self._states or self._copy is None:
            return
        if not self._snapshots:
            self._snapshots = [self._allocate(self._sizes[i]) for i in self._states]
            self.nbytes += sum(self._sizes[i] for i in self._states) * self._itemsize
        for (_, snapshot), i in zip(self._snapshots, self._states, strict=True):
            self._copy(snapshot, self._read[i], self._sizes[i] * self._itemsize)
        self._checkpoint = self.length

    def truncate(self, length: int) -> bool:
        """Keep the first ``length`` positions (module docstring); False when that cannot be
        done exactly (states, unless ``length`` is the checkpoint's; no ``copy`` for a
        ping-pong pair): the cache is then unchanged and the caller resets it."""
        if not 0 <= length <= self.length:
            raise ValueError(f"cannot truncate {self.length} positions to {length}")
        if length == self.length:
            return True
        if length == 0:
            self.reset()
            return True
        if self._states and length != self._checkpoint:
            return False
        if not self.shared:
            if self._copy is None:
                return False
            for i in self.moving:
                if i not in self._states:
                    self._compact(i, length)
                    self._read[i], self._write[i] = self._write[i], self._read[i]
        for (_, snapshot), i in zip(self._snapshots, self._states, strict=True):
            assert self._copy is not None  # a checkpoint was taken with it
            self._copy(self._read[i], snapshot, self._sizes[i] * self._itemsize)
        self.length = length
        return True

    def _compact(self, index: int, length: int) -> None:
        """Copy the first ``length`` positions of tensor ``index``'s past into its other
        buffer, laid out for ``length`` positions."""
        assert self._copy is not None
        shape = self.shapes[index]
        axis = shape.index(None)
        outer = math.prod(d for d in shape[:axis] if d is not None)
        row = math.prod(d for d in shape[axis + 1 :] if d is not None) * self._itemsize
        src, dst = self._read[index], self._write[index]
        for o in range(outer):
            self._copy(dst + o * length * row, src + o * self.length * row, length * row)

    def _clear_states(self) -> None:
        for i in self._states:
            for owner, _pointer in self._owners[i]:
                self._clear(owner, self._sizes[i])
