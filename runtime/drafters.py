"""The drafters of speculative decoding (:mod:`edge_sdk.runtime.speculative`).

* :class:`NGramDrafter` (prompt lookup): the last ``n`` tokens (``ngram_max`` down to
  ``ngram_min``) are looked up among the earlier tokens of prompt and output; the tokens that
  followed the latest match are the draft. An index (n-gram -> where it last ended) is updated
  with each new token, so a step costs a few dictionary look-ups, not a scan of the context.
* :class:`DraftModelDrafter`: a smaller bundle with the same tokenizer, on its own backend and
  KV cache, drafts greedily (or draws its drafts: :meth:`DraftModelDrafter.propose_sampled`).
  Its cache follows the target's accepted context: before each
  proposal it is cut back to what it shares with the context and the rest is run. A hybrid
  draft model (recurrent states) is cut back to its checkpoint, taken where the last proposal's
  context ended, and runs the accepted drafts with the rest.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edge_sdk.bundle import Bundle, load_bundle
from edge_sdk.errors import GenerationError
from edge_sdk.runtime.backend import Backend, BackendOptions, create_backend
from edge_sdk.runtime.prefix_store import common_prefix
from edge_sdk.runtime.sampling import Sampler

__all__ = ["DRAFT_THREADS", "DraftModelDrafter", "NGramDrafter", "check_draft_pair"]

#: Threads of a draft model's backend: it is small, and a second pool as large as the target's
#: fights it for the cores (measured on the trained pair, 2-core host, target on 2 threads:
#: 0.83x plain with the draft on 2 threads, 1.48x on 1; benchmarks/README.md).
DRAFT_THREADS = 1


class NGramDrafter:
    """Prompt lookup over the context (see the module docstring)."""

    def __init__(self, ngram_max: int = 3, ngram_min: int = 1) -> None:
        if not 1 <= ngram_min <= ngram_max:
            raise GenerationError(
                f"n-gram sizes must satisfy 1 <= ngram_min <= ngram_max, "
                f"got {ngram_min}, {ngram_max}"
            )
        self.sizes = tuple(range(ngram_max, ngram_min - 1, -1))
        self.reset()

    def reset(self) -> None:
        self._ids: list[int] = []
        # (n-gram) -> the index of its last token, for n-grams that some token follows
        self._last_end: dict[tuple[int, ...], int] = {}

    def propose(self, context: Sequence[int], k: int) -> list[int]:
        """The ``k`` tokens after the latest earlier occurrence of the longest matching suffix."""
        if k <= 0 or len(context) < 2:
            return []
        self._extend(context)
        ids = self._ids
        for n in self.sizes:
            if n > len(ids) - 1:
                continue
            end = self._last_end.get(tuple(ids[-n:]))
            if end is not None:
                return ids[end + 1 : end + 1 + k]
        return []

    def _extend(self, context: Sequence[int]) -> None:
        """Index the n-grams that end before the context's last token (each has a follower)."""
        known = len(self._ids)
        if known > len(context) or (known and context[known - 1] != self._ids[-1]):
            self.reset()  # not a continuation of what was indexed: start over
            known = 0
        self._ids.extend(int(t) for t in context[known:])
        ids, index = self._ids, self._last_end
        for end in range(max(known - 1, 0), len(ids) - 1):
            for n in self.sizes:
                if end + 1 >= n:
                    index[tuple(ids[end + 1 - n : end + 1])] = end


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_draft_pair(draft: Bundle, target: Bundle) -> None:
    """Refuse a draft bundle that cannot draft for ``target``: another tokenizer (by the
    SHA-256 of its file), another vocabulary size, or a model larger than the target."""
    if _sha256(draft.tokenizer_path) != _sha256(target.tokenizer_path):
        raise GenerationError(
            f"the draft bundle {draft.path} has another tokenizer than {target.path} "
            "(their tokenizer files differ): choose a draft model exported with the same "
            "tokenizer, or use speculative='ngram'"
        )
    dv, tv = draft.config.vocab_size, target.config.vocab_size
    if dv != tv:
        raise GenerationError(
            f"the draft bundle {draft.path} has a vocabulary of {dv} tokens, the target {tv}: "
            "choose a draft model with the target's vocabulary"
        )
    dp, tp = draft.config.parameter_count(), target.config.parameter_count()
    if dp > tp:
        raise GenerationError(
            f"the draft model ({dp / 1e6:.1f}M parameters) is larger than its target "
            f"({tp / 1e6:.1f}M): a draft must be cheaper; pick a smaller draft bundle"
        )


class DraftModelDrafter:
    """A smaller bundle that drafts on its own backend (see the module docstring).

    ``backend``: the draft's :class:`~edge_sdk.runtime.Backend`, active; its cache holds
    ``capacity`` positions (proposals stop when the context fills it)."""

    def __init__(self, bundle: Bundle, backend: Backend, capacity: int) -> None:
        self.bundle = bundle
        self.backend = backend
        self.capacity = min(capacity, bundle.max_sequence_length)
        self._ids: list[int] = []  # the ids in the draft's cache
        self._mark = -1  # the cache length at its checkpoint (the last proposal's context)
        self._allocated = False

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        target: Bundle,
        *,
        backend: str = "auto",
        threads: int | None = DRAFT_THREADS,
        capacity: int | None = None,
        verify: bool = True,
        session_config: dict[str, str] | None = None,
        cache_dir: Path | None = None,
    ) -> DraftModelDrafter:
        """Load the draft bundle at ``path`` for ``target`` (checked by
        :func:`check_draft_pair` before anything runs), on ``threads`` threads (default
        :data:`DRAFT_THREADS`) with the target's ``session_config`` and ``cache_dir``."""
        draft = load_bundle(path, verify=verify)
        check_draft_pair(draft, target)
        options = BackendOptions(
            threads=threads, session_config=dict(session_config or {}), cache_dir=cache_dir
        )
        engine = create_backend(backend, draft, options, activate=True)
        return cls(draft, engine, capacity or target.max_sequence_length)

    def reset(self) -> None:
        """Keep the cache: the next proposal reuses what it shares with the new context."""
        return None

    def propose(self, context: Sequence[int], k: int) -> list[int]:
        """Up to ``k`` greedy tokens of the draft model after ``context``."""
        return self._run(context, k, None)[0]

    def propose_sampled(
        self, context: Sequence[int], k: int, sampler: Sampler
    ) -> tuple[list[int], list[np.ndarray]]:
        """Up to ``k`` tokens, each drawn from the draft's distribution q by ``sampler``
        (temperature, top-k, top-p), and those distributions [vocab] (speculative sampling)."""
        return self._run(context, k, sampler)

    def _run(
        self, context: Sequence[int], k: int, sampler: Sampler | None
    ) -> tuple[list[int], list[np.ndarray]]:
        if k <= 0 or not context or len(context) + k > self.capacity:
            return [], []
        backend = self.backend
        if not self._allocated:
            backend.allocate(self.capacity)
            self._allocated = True
        if backend.cache_length != len(self._ids):  # run behind our back: trust nothing
            backend.reset()
            self._ids, self._mark = [], -1
        keep = min(common_prefix(self._ids, context), len(context) - 1)
        if keep != backend.cache_length and not backend.truncate(keep):
            keep = self._mark if 0 <= self._mark <= keep and backend.truncate(self._mark) else 0
            if keep == 0:
                backend.reset()
        del self._ids[keep:]
        self._ids.extend(int(t) for t in context[keep:])
        logits = backend.forward(np.asarray(self._ids[keep:], dtype=np.int64))
        backend.checkpoint()  # a hybrid draft's states: the next proposal may cut back here
        self._mark = len(self._ids)
        drafts: list[int] = []
        probs: list[np.ndarray] = []
        while True:
            if sampler is None:
                token = int(np.argmax(logits))
            else:
                probs.append(sampler.distribution(logits))
                token = sampler.draw(probs[-1])
            drafts.append(token)
            if len(drafts) == k:
                return drafts, probs
            logits = backend.forward(np.asarray([token], dtype=np.int64))
            self._ids.append(token)

    def close(self) -> None:
        """Release the draft's backend."""
        self.backend.deactivate()
