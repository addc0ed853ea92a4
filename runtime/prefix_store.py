"""Evicted prompt prefixes kept in host memory, least recently used first out.

When the engine's prompt cache (:mod:`edge_sdk.runtime.engine`) is about to overwrite what a
slot holds, it copies the slot's K/V positions here (:meth:`PrefixStore.put`); a later prompt
that shares more with a stored prefix than with any free slot copies them back into its slot
(:meth:`PrefixStore.best`) instead of prefilling them. The store holds at most ``capacity``
bytes; the least recently used prefixes leave first. Only backends whose rows can be copied out
and in exactly take part (the fused CPU graph of an attention-only model); a hybrid model's
state is not stored.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["PrefixStore", "StoredPrefix"]


@dataclass(frozen=True)
class StoredPrefix:
    """The ids of a prefix and its K/V positions, one array per cache tensor."""

    ids: tuple[int, ...]
    tensors: list[np.ndarray]

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.tensors)


class PrefixStore:
    """At most ``capacity`` bytes of :class:`StoredPrefix` es, least recently used out first."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.nbytes = 0
        self._entries: OrderedDict[tuple[int, ...], StoredPrefix] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, prefix: StoredPrefix) -> None:
        """Keep ``prefix`` (replacing one of the same ids), evicting the least recently used
        until it fits; one larger than the whole store is not kept."""
        if prefix.nbytes > self.capacity:
            return
        old = self._entries.pop(prefix.ids, None)
        if old is not None:
            self.nbytes -= old.nbytes
        while self._entries and self.nbytes + prefix.nbytes > self.capacity:
            _, evicted = self._entries.popitem(last=False)
            self.nbytes -= evicted.nbytes
        self._entries[prefix.ids] = prefix
        self.nbytes += prefix.nbytes

    def best(self, prompt: Sequence[int]) -> tuple[StoredPrefix | None, int]:
        """The stored prefix sharing the most leading ids with ``prompt``, and how many (it
        becomes the most recently used); (None, 0) when none shares any."""
        found, most = None, 0
        for prefix in self._entries.values():
            shared = common_prefix(prefix.ids, prompt)
            if shared > most:
                found, most = prefix, shared
        if found is not None:
            self._entries.move_to_end(found.ids)
        return found, most


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading ids ``a`` and ``b`` share."""
    n = min(len(a), len(b))
    if n == 0:
        return 0
    differ = np.flatnonzero(np.asarray(a[:n]) != np.asarray(b[:n]))
    return int(differ[0]) if differ.size else n
