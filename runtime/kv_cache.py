"""The KV cache: buffers allocated once per generation, written in place by the model.

The standard graph reads ``past_key_values.{i}.*`` [1, kv_heads, past, head_dim] and writes
``present.{i}.*`` [1, kv_heads, past + n, head_dim]. A slice of one [kv_heads, capacity,
head_dim] buffer is not contiguous when kv_heads > 1, so past and present cannot share memory.
The cache therefore keeps two flat buffers per tensor, each big enough for ``capacity``
positions: a step binds one as the past (read) and the other as the present (written by the
model directly, through I/O binding), then the two swap. Nothing is copied through Python and
nothing is allocated per token; the per-token host work is a fixed number of pointer bindings.

The onnxruntime graph (``GroupQueryAttention``, see the exporter's ``fused_graph``) instead reads
and writes one [1, kv_heads, capacity, head_dim] buffer per tensor in place (``shared=True``):
half the memory, and a decode step writes only its own position.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["KVCache"]

#: Allocates a flat float32 buffer of n elements; returns (owner kept alive, data pointer).
Allocator = Callable[[int], tuple[Any, int]]


class KVCache:
    """Past/present buffers for ``num_tensors`` cache tensors (key and value per layer).

    Ping-pong pairs by default; one buffer per tensor, read and written in place, when ``shared``.
    """

    def __init__(
        self,
        num_tensors: int,
        kv_heads: int,
        head_dim: int,
        capacity: int,
        allocate: Allocator,
        itemsize: int = 4,
        shared: bool = False,
    ) -> None:
        self.kv_heads = kv_heads
        self.head_dim = head_dim
        self.capacity = capacity
        self.shared = shared
        self.length = 0
        per_tensor = kv_heads * capacity * head_dim
        copies = 1 if shared else 2
        buffers = [[allocate(per_tensor) for _ in range(copies)] for _ in range(num_tensors)]
        self._owners = buffers  # keeps the memory alive
        self._read = [b[0][1] for b in buffers]
        self._write = [b[-1][1] for b in buffers]
        self.nbytes = copies * num_tensors * per_tensor * itemsize

    def past_shape(self) -> list[int]:
        """Shape of the past tensors now: [1, kv_heads, length (capacity if shared), head_dim]."""
        return [1, self.kv_heads, self.capacity if self.shared else self.length, self.head_dim]

    def present_shape(self, new: int) -> list[int]:
        """Shape of the present tensors after ``new`` positions (capacity if shared)."""
        return [
            1,
            self.kv_heads,
            self.capacity if self.shared else self.length + new,
            self.head_dim,
        ]

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
        if not self.shared:
            self._read, self._write = self._write, self._read

    def reset(self) -> None:
        """Forget every position (the memory stays allocated)."""
        self.length = 0
