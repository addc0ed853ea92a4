"""Choosing the next token from logits: greedy, temperature, top-k, top-p, repetition penalty,
and speculative sampling's acceptance rule for a token a draft model drew (:meth:`Sampler.verify`).

Everything is numpy over one [vocab] vector, so the per-token cost does not grow with the
context: the repetition penalty keeps a [vocab] mask of the ids seen so far.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from edge_sdk.errors import GenerationError

__all__ = ["Sampler", "SamplingOptions"]


@dataclass(frozen=True)
class SamplingOptions:
    """How to pick tokens.

    ``temperature`` 0 (the default) is greedy: always the most likely token. Above 0 the
    logits are divided by it and a token is drawn, among the ``top_k`` most likely (0: all) whose
    cumulative probability reaches ``top_p`` (1.0: all). ``repetition_penalty`` > 1 makes tokens
    already in the prompt or the output less likely (the CTRL / Hugging Face rule: positive
    logits divided by it, negative ones multiplied). ``seed`` makes sampling repeatable.
    """

    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    seed: int | None = None

    def __post_init__(self) -> None:
        if not self.temperature >= 0:
            raise GenerationError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k < 0:
            raise GenerationError(f"top_k must be >= 0 (0 turns it off), got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise GenerationError(f"top_p must be in (0, 1], got {self.top_p}")
        if not self.repetition_penalty > 0:
            raise GenerationError(
                f"repetition_penalty must be > 0 (1.0 turns it off), got {self.repetition_penalty}"
            )

    @property
    def greedy(self) -> bool:
        """Whether no randomness is involved."""
        return self.temperature == 0 or self.top_k == 1


class Sampler:
    """Stateful sampler for one generation (its random stream and the ids it has seen)."""

    def __init__(self, options: SamplingOptions, vocab_size: int) -> None:
        self.options = options
        self._rng = np.random.default_rng(options.seed)
        self._penalize = options.repetition_penalty != 1.0
        self._seen = np.zeros(vocab_size, dtype=bool) if self._penalize else None

    def observe(self, token_ids: Iterable[int]) -> None:
        """Record ids that are in the context (for the repetition penalty)."""
        if self._seen is not None:
            ids = np.fromiter(token_ids, dtype=np.int64)
            self._seen[ids[(ids >= 0) & (ids < self._seen.size)]] = True

    def __call__(
        self,
        logits: np.ndarray,
        restrict: Callable[[np.ndarray, bool], np.ndarray] | None = None,
        drafted: tuple[int, np.ndarray] | None = None,
    ) -> int:
        """The next token id for ``logits`` [vocab] (not modified). ``restrict(logits,
        greedy)``, applied after the repetition penalty and before the pick, returns the logits
        with the tokens a constraint forbids at ``-inf`` (structured output). ``drafted``: a
        draft token and the distribution q [vocab] it was drawn from (speculative sampling:
        :meth:`verify`; ignored when greedy)."""
        opts = self.options
        if self._seen is not None:
            logits = logits.copy()
            seen = logits[self._seen]
            logits[self._seen] = np.where(
                seen > 0, seen / opts.repetition_penalty, seen * opts.repetition_penalty
            )
        if restrict is not None:
            logits = restrict(logits, opts.greedy)
        if opts.greedy:
            token = int(np.argmax(logits))
        elif drafted is None:
            token = self._draw(logits)
        else:
            token = self.verify(self.distribution(logits), *drafted)
        if self._seen is not None:
            self._seen[token] = True
        return token

    def distribution(self, logits: np.ndarray) -> np.ndarray:
        """The probabilities [vocab] (float64) a draw from ``logits`` follows: temperature,
        then top-k and top-p (zero outside them). Not for greedy options."""
        candidates, probs = self._candidates(logits)
        if candidates is None:
            return probs
        full = np.zeros(logits.size, dtype=np.float64)
        full[candidates] = probs
        return full

    def draw(self, probs: np.ndarray) -> int:
        """A token drawn from ``probs`` [vocab] (a :meth:`distribution`)."""
        return int(self._rng.choice(probs.size, p=probs))

    def verify(self, p: np.ndarray, draft: int, q: np.ndarray) -> int:
        """Speculative sampling's rule for ``draft`` drawn from ``q``, the target's
        distribution being ``p`` (both [vocab]): keep it with probability min(1, p/q), else
        draw from max(0, p - q) normalized; the token that comes out follows ``p``."""
        if self._rng.random() * q[draft] < p[draft]:
            return draft
        residual = np.maximum(p - q, 0.0)
        total = residual.sum()
        return self.draw(residual / total if total > 0 else p)

    def _draw(self, logits: np.ndarray) -> int:
        candidates, probs = self._candidates(logits)
        if candidates is None:
            return self.draw(probs)
        return int(candidates[self._rng.choice(candidates.size, p=probs)])

    def _candidates(self, logits: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
        """The ids a draw chooses among (None: the whole vocabulary) and their probabilities."""
        opts = self.options
        scaled = logits.astype(np.float64) / opts.temperature
        if opts.top_k == 0 and opts.top_p >= 1.0:  # the whole vocabulary: no order needed
            probs = np.exp(scaled - scaled.max())
            return None, probs / probs.sum()
        if 0 < opts.top_k < scaled.size:
            candidates = np.argpartition(scaled, -opts.top_k)[-opts.top_k :]
        elif opts.top_k == 0:  # top-p alone: sort only the most likely tokens that reach it
            candidates = _nucleus_candidates(scaled, opts.top_p)
        else:
            candidates = np.arange(scaled.size)
        values = scaled[candidates]
        order = np.argsort(-values, kind="stable")
        candidates, values = candidates[order], values[order]
        probs = np.exp(values - values[0])
        if opts.top_k == 0:  # the nucleus is measured against the whole vocabulary
            probs /= np.exp(scaled - values[0]).sum()
        else:
            probs /= probs.sum()
        if opts.top_p < 1.0:
            keep = int(np.searchsorted(np.cumsum(probs), opts.top_p) + 1)
            candidates, probs = candidates[:keep], probs[:keep] / probs[:keep].sum()
        return candidates, probs


def _nucleus_candidates(scaled: np.ndarray, top_p: float) -> np.ndarray:
    """The ids of the most likely tokens whose probability sums to at least ``top_p`` (a few
    more: whole partitions of 64, 256, ... ids), without sorting the vocabulary."""
    probs = np.exp(scaled - scaled.max())
    need = top_p * probs.sum()
    size = 64
    while size < probs.size:
        candidates = np.argpartition(probs, -size)[-size:]
        if probs[candidates].sum() >= need:
            return candidates
        size *= 4
    return np.arange(probs.size)
