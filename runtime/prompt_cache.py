"""The engine's prompt (prefix) cache: which slot a request gets, and how much of its prompt the
slot already holds.

A slot keeps the ids whose positions it holds after its request ends (until another request is
admitted there). Admission picks, among the free slots, the one whose ids share the longest
prefix with the new prompt (ties, and no match at all: the least recently used), keeps
``min(prefix, len(prompt) - 1)`` of its positions (one prompt token at least runs, for the
logits of the first output) and prefills only the rest: the next turn of a chat prefills only
the new message, a shared system prompt is prefilled once per slot.

Cutting a slot to fewer positions is exact (:meth:`SlotModel.truncate`: the fused graph's rows
just get shorter; the standard graph's cache moves its data to the layout of the shorter
length). A hybrid model (Qwen3.5: Gated DeltaNet layers keep a recurrent state that cannot be
rewound) keeps a slot's positions only where its state is known exactly: all it holds (the new
prompt extends it), or the checkpoint taken when its last prompt's prefill ended (a copy of the
row's states: the next turn of a chat reuses the previous prompt even when the reply is laid out
anew); else the slot starts empty. The one-slot fallback over a backend that cannot cut its
cache exactly (onnxruntime's CUDA and TensorRT EPs; a hybrid model's standard graph) reuses it
only when the new prompt extends all it holds.

With ``store_bytes`` > 0, a slot's positions that a new request is about to overwrite (most of
them: another conversation takes the slot) are first copied to a host-memory LRU store of that
size (:mod:`edge_sdk.runtime.prefix_store`), and a prompt that shares more with a stored prefix
than with its slot gets those positions copied back (the fused CPU graph of an attention-only
model; elsewhere the store stays empty).

Disabled (``Engine(..., prefix_cache=False)``), admission takes the lowest free slot and
empties it, as before the cache existed. Used by the engine's thread only.
"""

from __future__ import annotations

from collections.abc import Sequence

from edge_sdk.errors import GenerationError
from edge_sdk.runtime.prefix_store import PrefixStore, StoredPrefix, common_prefix
from edge_sdk.runtime.slots import SlotModel

__all__ = ["PromptCache"]

MIN_STORED = 32  # fewer positions lost are not worth a copy to the host store


class PromptCache:
    """The ids each slot of ``model`` holds, and the admission rule (module docstring)."""

    def __init__(self, model: SlotModel, enabled: bool = True, store_bytes: int = 0) -> None:
        if store_bytes < 0:
            raise GenerationError(f"prefix_store_bytes must be >= 0, got {store_bytes}")
        self.model = model
        self.enabled = enabled
        self._held: list[list[int]] = [[] for _ in range(model.slots)]
        self._last_used = [0] * model.slots  # when each slot was last admitted to or freed
        self._clock = 0
        self._store = PrefixStore(store_bytes) if enabled and store_bytes else None

    def admit(self, free: Sequence[int], prompt: Sequence[int], reuse: bool) -> tuple[int, int]:
        """Choose a slot among ``free`` for ``prompt`` and prepare it: the slot, and how many of
        the prompt's first positions it holds now (0: it was emptied). ``reuse=False``: the
        request opted out (``cache_prompt``)."""
        slot, keep = self._pick(free, prompt, reuse)
        self._stash(slot, keep)
        stored, restore = self._stored(prompt) if reuse else (None, 0)
        if (
            stored is not None
            and restore > keep
            and self.model.copy_in(slot, stored.tensors, restore)
        ):
            self._held[slot] = list(stored.ids[:restore])
            kept = restore
        elif keep and self.model.truncate(slot, keep):
            del self._held[slot][keep:]
            kept = keep
        else:
            self.model.release(slot)
            self._held[slot] = []
            kept = 0
        self._touch(slot)
        return slot, kept

    def ran(self, slot: int, ids: Sequence[int]) -> None:
        """Record that ``ids`` ran on top of what ``slot`` holds."""
        self._held[slot] += ids

    def held(self, slot: int) -> list[int]:
        """The ids whose positions ``slot`` holds (a copy)."""
        return list(self._held[slot])

    def cut(self, slot: int, length: int) -> None:
        """``slot`` was cut to its first ``length`` positions (rejected drafts)."""
        del self._held[slot][length:]

    def prompt_done(self, slot: int) -> None:
        """The prompt of ``slot``'s request has run: a hybrid row may come back to here."""
        self.model.checkpoint(slot)

    def finished(self, slot: int, failed: bool) -> None:
        """``slot``'s request ended; a failed model call may have left it half-written."""
        self._touch(slot)
        if failed:
            self.model.release(slot)
            self._held[slot] = []

    def _pick(self, free: Sequence[int], prompt: Sequence[int], reuse: bool) -> tuple[int, int]:
        if not self.enabled:
            return free[0], 0  # the lowest rows: a decode call runs rows 0..highest busy
        if not reuse:
            return min(free, key=lambda s: self._last_used[s]), 0

        def usable(slot: int) -> int:
            shared = common_prefix(self._held[slot], prompt)
            return self.model.reusable(slot, min(shared, len(prompt) - 1))

        slot = max(free, key=lambda s: (usable(s), -self._last_used[s]))
        return slot, usable(slot)

    def _stash(self, slot: int, keep: int) -> None:
        """Copy what ``slot`` holds to the host store when the new request keeps less than half
        of it (and loses at least :data:`MIN_STORED` positions)."""
        held = self._held[slot]
        if self._store is None or len(held) - keep < max(MIN_STORED, len(held) // 2):
            return
        tensors = self.model.copy_out(slot)
        if tensors is not None:
            self._store.put(StoredPrefix(tuple(held), tensors))

    def _stored(self, prompt: Sequence[int]) -> tuple[StoredPrefix | None, int]:
        """The stored prefix that shares most with ``prompt``, and how many of its positions to
        copy back (at most all but the prompt's last token)."""
        if self._store is None:
            return None, 0
        stored, shared = self._store.best(prompt)
        return stored, min(shared, len(prompt) - 1)

    def _touch(self, slot: int) -> None:
        self._clock += 1
        self._last_used[slot] = self._clock
