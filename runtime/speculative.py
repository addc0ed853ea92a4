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

:class:`DraftLength` picks ``k`` from the measured acceptance and the measured cost of a call by
its number of rows (expected tokens per second), probing now and then from 0, so a prompt with
nothing to copy costs little and a CPU where several rows cost nearly as much as one call each
is not made slower.
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
    :data:`MAX_DRAFT_TOKENS`): the most tokens one step drafts; ``adaptive``: choose each
    step's length from the measured acceptance and call costs (:class:`DraftLength`; False:
    always ``k_max``).
    """

    method: str = "ngram"
    k_max: int = 8
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
    """The adaptive draft length: the ``k`` that maximizes expected tokens per second.

    It keeps the measured time of a model call by its number of rows (:meth:`timed`; a
    moving average each) and the per-token acceptance (:meth:`update`; decayed counts, so it
    follows a prompt's copy-heavy and free stretches). Drafting ``k`` tokens is expected to
    give ``1 + a + ... + a^k`` tokens for a call of ``k + 1`` rows; the cost of a row count
    never timed is interpolated (a line through the one-row time and the measured multi-row
    ones; before any, each extra row is assumed to cost a quarter of a one-row call, so the
    first steps try). When no ``k`` beats plain decoding, it drafts nothing but probes with
    one token every :attr:`PROBE_EVERY` steps. The first step is plain (it times a one-row
    call). ``adaptive=False``: always ``k_max``.
    """

    #: Steps without drafting before a one-token probe.
    PROBE_EVERY = 8
    #: How much of the acceptance counts each step keeps (the rest is the step's news).
    DECAY = 0.8
    #: The moving averages' weight of a new timing.
    WEIGHT = 0.3

    def __init__(self, options: SpeculativeOptions) -> None:
        self.k_max = options.k_max
        self.adaptive = options.adaptive
        self.k = 0  # the last length chosen
        self._seconds: dict[int, float] = {}  # rows -> moving average of a call's time
        self._hits, self._tries = 1.0, 2.0  # decayed counts; prior: acceptance 0.5
        self._idle = 0

    @property
    def acceptance(self) -> float:
        """The per-token acceptance estimate."""
        return self._hits / self._tries

    def costs(self) -> list[float] | None:
        """Seconds of a call of 1 .. ``k_max + 1`` rows, measured or interpolated (None before
        a one-row call was timed)."""
        seconds = self._seconds
        one = seconds.get(1)
        if one is None:
            return None
        slopes = [(t - one) / (n - 1) for n, t in seconds.items() if n > 1]
        slope = max(sum(slopes) / len(slopes), 0.0) if slopes else 0.25 * one
        return [seconds.get(n, one + slope * (n - 1)) for n in range(1, self.k_max + 2)]

    def best(self) -> int:
        """The ``k`` with the most expected tokens per second (0: plain decoding)."""
        costs = self.costs()
        if costs is None:
            return 0  # a plain step first: its time is what drafting must beat
        a = min(self.acceptance, 0.999)
        best_k, best_rate, expected, power = 0, 0.0, 0.0, 1.0
        for k, seconds in enumerate(costs):
            expected += power  # 1 + a + ... + a^k
            power *= a
            if seconds > 0 and expected / seconds > best_rate:
                best_k, best_rate = k, expected / seconds
        return best_k

    def next(self) -> int:
        """How many tokens to draft in this step."""
        if not self.adaptive:
            return self.k_max
        self.k = self.best()
        if self.k > 0:
            self._idle = 0
            return self.k
        self._idle += 1
        if self._idle >= self.PROBE_EVERY:
            self._idle = 0
            return 1
        return 0

    def update(self, drafted: int, accepted: int) -> None:
        """Record a step's outcome (``drafted`` 0: the drafter offered nothing)."""
        if drafted == 0:
            return
        tries = accepted + (accepted < drafted)  # the accepted ones, and the miss if any
        self._hits = self._hits * self.DECAY + accepted
        self._tries = self._tries * self.DECAY + tries

    def timed(self, rows: int, seconds: float) -> None:
        """A model call of ``rows`` rows took ``seconds``."""
        old = self._seconds.get(rows)
        self._seconds[rows] = seconds if old is None else old + self.WEIGHT * (seconds - old)


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

    def timed(self, rows: int, seconds: float) -> None:
        """A model call of ``rows`` rows (the pending token and the drafts) took ``seconds``."""
        self.length.timed(rows, seconds)
