"""Speculative decoding: a drafter proposes the next tokens, the model checks them in one call.

::

    gen.generate(prompt, speculative="ngram")                       # prompt lookup, no extra model
    gen.generate(prompt, speculative="draft:bundles/demo-int8")     # a smaller bundle drafts
    gen.generate(prompt, speculative=SpeculativeOptions("ngram", k_max=8))

Each step runs the pending token and up to ``k`` drafted tokens in one model call
(:meth:`~edge_sdk.runtime.Backend.forward_all`: every position's logits), then pushes the rows
through the sequence's sampler in order: a sampled token equal to the draft goes on to the next
row, the first one that differs is the correction and the rest are dropped (the cache is cut
back with :meth:`~edge_sdk.runtime.Backend.truncate`). For a deterministic drafter this is the
standard speculative-sampling rule, so the output is what plain decoding gives (greedy: token
for token; sampled: the same distribution, and the same tokens for a seed).

:class:`DraftLength` adapts ``k`` to the acceptance (grow on a full accept, shrink on a miss,
probe now and then from 0) so a prompt with nothing to copy costs little.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from edge_sdk.errors import GenerationError

__all__ = [
    "MAX_DRAFT_TOKENS",
    "SPECULATIVE_METHODS",
    "DraftLength",
    "Drafter",
    "Speculation",
    "SpeculativeOptions",
    "speculative_options",
]

#: The most tokens one step may draft (``k_max``).
MAX_DRAFT_TOKENS = 32
#: What ``SpeculativeOptions.method`` takes: prompt lookup, a draft bundle, a drafter object.
SPECULATIVE_METHODS = ("ngram", "draft", "custom")


@runtime_checkable
class Drafter(Protocol):
    """Proposes up to ``k`` tokens that may follow ``context`` (prompt and accepted output).

    ``context`` only ever grows between calls of one generation, except where drafts were
    rejected (it is then the accepted prefix); a drafter that keeps state checks that itself.
    :meth:`reset` starts a new generation."""

    def propose(self, context: Sequence[int], k: int) -> list[int]:
        """Up to ``k`` token ids (fewer or none when it has nothing to offer)."""
        ...

    def reset(self) -> None:
        """Forget the previous generation."""
        ...


@dataclass(frozen=True)
class SpeculativeOptions:
    """How a generation speculates (checked when made: :class:`~edge_sdk.GenerationError`).

    ``method``: ``"ngram"`` (prompt lookup: the continuation after the latest earlier match of
    the last ``ngram_max`` .. ``ngram_min`` tokens of prompt and output), ``"draft"`` (the
    bundle at ``draft`` drafts greedily; same tokenizer, smaller than the target) or
    ``"custom"`` (``drafter``, any :class:`Drafter`). ``k_max`` (1 to
    :data:`MAX_DRAFT_TOKENS`): the most tokens one step drafts; ``k_start``: the draft length
    of the first step (default ``min(4, k_max)``); ``adaptive``: let the length follow the
    acceptance (:class:`DraftLength`; False: always ``k_max``).
    """

    method: str = "ngram"
    k_max: int = 8
    k_start: int | None = None
    adaptive: bool = True
    ngram_max: int = 3
    ngram_min: int = 1
    draft: str | Path | None = None
    drafter: Drafter | None = dataclasses.field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.method not in SPECULATIVE_METHODS:
            raise GenerationError(
                f"unknown speculative method {self.method!r}; choose ngram, draft:PATH "
                "(a draft bundle) or pass a Drafter"
            )
        k_max = _integer("k_max", self.k_max, 1, MAX_DRAFT_TOKENS)
        k_start = min(4, k_max) if self.k_start is None else self.k_start
        k_start = _integer("k_start", k_start, 0, k_max)
        ngram_min = _integer("ngram_min", self.ngram_min, 1, 16)
        ngram_max = _integer("ngram_max", self.ngram_max, ngram_min, 16)
        if self.method == "draft" and not self.draft:
            raise GenerationError("speculative method 'draft' needs a draft bundle: draft:PATH")
        if self.method == "custom" and not isinstance(self.drafter, Drafter):
            raise GenerationError(
                "speculative method 'custom' needs a drafter with propose(context, k) and reset()"
            )
        for name, value in (
            ("k_max", k_max),
            ("k_start", k_start),
            ("ngram_min", ngram_min),
            ("ngram_max", ngram_max),
            ("adaptive", bool(self.adaptive)),
        ):
            object.__setattr__(self, name, value)

    @classmethod
    def parse(cls, spec: str, **changes: Any) -> SpeculativeOptions:
        """``"ngram"`` or ``"draft:PATH"`` (the CLI's and the server's form)."""
        method, _, path = spec.partition(":")
        method = method.strip().lower()
        if method == "draft":
            return cls("draft", draft=path.strip() or None, **changes)
        if method == "ngram" and not path:
            return cls("ngram", **changes)
        raise GenerationError(
            f"unknown speculative method {spec!r}; choose ngram or draft:PATH (a draft bundle)"
        )

    def describe(self) -> str:
        """A few words (for logs and ``--json``)."""
        return f"draft:{self.draft}" if self.method == "draft" else self.method


def speculative_options(value: object) -> SpeculativeOptions | None:
    """What ``GenerationOptions.speculative`` takes, normalized: None or False (off), True or
    ``"ngram"``, ``"draft:PATH"``, a :class:`SpeculativeOptions`, or a :class:`Drafter`."""
    if value is None or value is False:
        return None
    if value is True:
        return SpeculativeOptions()
    if isinstance(value, SpeculativeOptions):
        return value
    if isinstance(value, str):
        return SpeculativeOptions.parse(value)
    if isinstance(value, Drafter):
        return SpeculativeOptions("custom", drafter=value)
    raise GenerationError(
        "speculative must be None, 'ngram', 'draft:PATH', a SpeculativeOptions or a Drafter, "
        f"got {type(value).__name__}"
    )


def _integer(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise GenerationError(
            f"speculative {name} must be an integer from {low} to {high}, got {value!r}"
        )
    return value


class DraftLength:
    """The adaptive draft length: ``k`` grows by one after a step whose drafts were all
    accepted, falls to the larger of the accepted count and ``k // 2`` after a miss (so
    repeated misses reach 0), and after :attr:`PROBE_EVERY` steps at 0 probes again with one
    token."""

    #: Steps without drafting before a one-token probe.
    PROBE_EVERY = 8

    def __init__(self, options: SpeculativeOptions) -> None:
        self.k_max = options.k_max
        self.adaptive = options.adaptive
        start = options.k_max if options.k_start is None else options.k_start
        self.k: int = start if options.adaptive else options.k_max
        self._idle = 0

    def next(self) -> int:
        """How many tokens to draft in this step."""
        if self.k > 0:
            return self.k
        self._idle += 1
        if self._idle >= self.PROBE_EVERY:
            self._idle = 0
            return 1
        return 0

    def update(self, drafted: int, accepted: int) -> None:
        """Record a step's outcome (``drafted`` 0: the drafter offered nothing)."""
        if not self.adaptive or drafted == 0:
            return
        if accepted == drafted:
            self.k = min(self.k_max, max(self.k, drafted) + 1)
        else:
            self.k = max(accepted, self.k // 2)


class Speculation:
    """One generation's speculative state: its drafter, the draft length and the counts
    (:attr:`drafted`: tokens proposed and run through the model; :attr:`accepted`: of them,
    those the sampler picked too)."""

    def __init__(self, options: SpeculativeOptions, drafter: Drafter, vocab_size: int) -> None:
        self.drafter = drafter
        self.length = DraftLength(options)
        self.vocab_size = vocab_size
        self.drafted = 0
        self.accepted = 0
        drafter.reset()

    def draft(self, context: Sequence[int], room: int) -> list[int]:
        """The tokens to check after ``context`` (at most ``room``); ids outside the
        vocabulary end the draft."""
        k = min(self.length.next(), room)
        if k <= 0:
            return []
        drafts: list[int] = []
        for token in list(self.drafter.propose(context, k))[:k]:
            if not 0 <= int(token) < self.vocab_size:
                break
            drafts.append(int(token))
        self.drafted += len(drafts)
        return drafts

    def adapt(self, drafted: int, accepted: int) -> None:
        """The last step kept ``accepted`` of its ``drafted`` tokens (the caller counts
        :attr:`accepted` as each one is kept)."""
        self.length.update(drafted, accepted)
