"""Speculative decoding: a drafter proposes the next tokens, the model checks them in one call.

::

    gen.generate(prompt, speculative="ngram")                       # prompt lookup, no extra model
    gen.generate(prompt, speculative="draft:bundles/demo-int8")     # a smaller bundle drafts
    gen.generate(prompt, speculative=SpeculativeOptions("ngram", k_max=8))

Each step runs the pending token and up to ``k`` drafted tokens in one model call
(:meth:`~edge_sdk.runtime.Backend.forward_all`: every position's logits), then pushes the rows
through the sequence's sampler in order: a sampled token equal to the draft goes on to the next
row, the first one that differs is the correction and the rest are dropped (the cache is cut
back with :meth:`~edge_sdk.runtime.Backend.truncate`; a hybrid model's recurrent states go back
to a :meth:`~edge_sdk.runtime.Backend.checkpoint` and the accepted tokens run again). For a
deterministic drafter this is the standard speculative-sampling rule, so the output is what
plain decoding gives (greedy: token for token; sampled: the same distribution, and the same
tokens for a seed).

When sampling (temperature > 0) with a drafter that can sample (:class:`SamplingDrafter`: the
draft model), the drafts are drawn from the draft's distribution q (the request's temperature,
top-k and top-p applied to the draft's logits; a random stream of its own), and each row keeps
its draft with probability min(1, p/q), else draws from max(0, p - q) normalized
(:meth:`~edge_sdk.runtime.Sampler.verify`): the standard rule, whose output follows p, and which
accepts more than checking a greedy draft when p is spread out. The same tokens for a seed as
plain decoding are then not kept (the draws differ), only the distribution.

:class:`DraftLength` picks ``k`` from the measured acceptance and the measured cost of a call by
its number of rows (expected tokens per second), probing now and then from 0, so a prompt with
nothing to copy costs little and a CPU where several rows cost nearly as much as one call each
is not made slower.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from edge_sdk.errors import GenerationError
from edge_sdk.runtime.sampling import Sampler, SamplingOptions

__all__ = [
    "MAX_DRAFT_TOKENS",
    "SPECULATIVE_METHODS",
    "DraftLength",
    "Drafter",
    "SamplingDrafter",
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


@runtime_checkable
class SamplingDrafter(Drafter, Protocol):
    """A :class:`Drafter` that can also draw its drafts (a draft model)."""

    def propose_sampled(
        self, context: Sequence[int], k: int, sampler: Sampler
    ) -> tuple[list[int], list[np.ndarray]]:
        """Up to ``k`` tokens, each drawn with ``sampler`` from its distribution q
        (:meth:`~edge_sdk.runtime.Sampler.distribution`), and those distributions."""
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

    It keeps the measured time of a model call by its number of rows (:meth:`timed`; the
    median of the last :attr:`SAMPLES` each: a machine shared with other work has spikes) and
    the per-token acceptance (:meth:`update`; decayed counts, so it follows a prompt's
    copy-heavy and free stretches). Drafting ``k`` tokens is expected to
    give ``1 + a + ... + a^k`` tokens for a call of ``k + 1`` rows; the cost of a row count
    never timed is interpolated (a line through the one-row time and the measured multi-row
    ones; before any, each extra row is assumed to cost a quarter of a one-row call, so the
    first steps try). When no ``k`` beats plain decoding, it drafts nothing but probes with
    one token after :attr:`PROBE_EVERY` steps (twice as long after each probe that fails).
    The first two steps are plain (they time a one-row call; the first is a warm-up), and so is
    one step after :attr:`RETIME_EVERY` drafting steps. ``adaptive=False``: always ``k_max``.
    """

    #: Steps without drafting before a one-token probe (doubled after each probe that fails,
    #: up to :attr:`PROBE_MAX`; back to this after one that lands).
    PROBE_EVERY = 8
    PROBE_MAX = 64
    #: Drafting steps after which one plain step times a one-row call again (the baseline
    #: every length is weighed against; drafting steps never time it).
    RETIME_EVERY = 32
    #: How much of the acceptance counts each step keeps (the rest is the step's news).
    DECAY = 0.8
    #: Timings kept per row count (their median is its cost).
    SAMPLES = 8

    def __init__(self, options: SpeculativeOptions) -> None:
        self.k_max = options.k_max
        self.adaptive = options.adaptive
        self.k = 0  # the last length chosen
        self._seconds: dict[int, deque[float]] = {}  # rows -> the last timings of such calls
        self._hits, self._tries = 1.0, 2.0  # decayed counts; prior: acceptance 0.5
        self._idle = 0
        self._probe_every = self.PROBE_EVERY
        self._probing = False  # the last length was a probe
        self._one_row_times = 0  # one-row calls timed (the first one is a warm-up)
        self._since_one_row = 0  # multi-row calls since the last one-row call

    @property
    def acceptance(self) -> float:
        """The per-token acceptance estimate."""
        return self._hits / self._tries

    def costs(self) -> list[float] | None:
        """Seconds of a call of 1 .. ``k_max + 1`` rows, measured or interpolated (None before
        a one-row call was timed)."""
        if 1 not in self._seconds:
            return None
        seconds = {n: statistics.median(times) for n, times in self._seconds.items()}
        one = seconds[1]
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
        if self._one_row_times < 2 or self._since_one_row >= self.RETIME_EVERY:
            self.k = 0  # a plain step: (re)time the one-row call
            return 0
        self.k = self.best()
        self._probing = False
        if self.k > 0:
            self._idle = 0
            return self.k
        self._idle += 1
        if self._idle >= self._probe_every:
            self._idle, self._probing = 0, True
            return 1
        return 0

    def update(self, drafted: int, accepted: int) -> None:
        """Record a step's outcome (``drafted`` 0: the drafter offered nothing)."""
        if drafted == 0:
            return
        if self._probing:
            landed = accepted > 0
            self._probe_every = (
                self.PROBE_EVERY if landed else min(2 * self._probe_every, self.PROBE_MAX)
            )
        tries = accepted + (accepted < drafted)  # the accepted ones, and the miss if any
        self._hits = self._hits * self.DECAY + accepted
        self._tries = self._tries * self.DECAY + tries

    def timed(self, rows: int, seconds: float) -> None:
        """A model call of ``rows`` rows took ``seconds``."""
        times = self._seconds.setdefault(rows, deque(maxlen=self.SAMPLES))
        if rows == 1:
            self._one_row_times += 1
            self._since_one_row = 0
            if self._one_row_times == 2:
                times.clear()  # the first call after a prefill is slow (a warm-up): dropped
        else:
            self._since_one_row += 1
        times.append(seconds)


class Speculation:
    """One generation's speculative state: its drafter, the draft length and the counts
    (:attr:`drafted`: tokens proposed and run through the model; :attr:`accepted`: of them,
    those the sampler picked too). ``sampling``: the generation's options; when they sample
    and the drafter is a :class:`SamplingDrafter`, drafts are drawn (module docstring)."""

    def __init__(
        self,
        options: SpeculativeOptions,
        drafter: Drafter,
        vocab_size: int,
        sampling: SamplingOptions | None = None,
    ) -> None:
        self.drafter = drafter
        self.length = DraftLength(options)
        self.vocab_size = vocab_size
        self.drafted = 0
        self.accepted = 0
        self._sampler: Sampler | None = None
        if sampling is not None and not sampling.greedy and isinstance(drafter, SamplingDrafter):
            seed = None if sampling.seed is None else sampling.seed + 1  # a stream of its own
            draws = SamplingOptions(sampling.temperature, sampling.top_k, sampling.top_p, seed=seed)
            self._sampler = Sampler(draws, vocab_size)
        self._drafts: list[int] = []  # the last draft, and its distributions when drawn
        self._probs: list[np.ndarray] = []
        drafter.reset()

    @property
    def sampled(self) -> bool:
        """Whether drafts are drawn from the draft's distribution (else proposed as they are)."""
        return self._sampler is not None

    def draft(self, context: Sequence[int], room: int) -> list[int]:
        """The tokens to check after ``context`` (at most ``room``); ids outside the
        vocabulary end the draft."""
        k = min(self.length.next(), room)
        self._drafts, self._probs = [], []
        if k <= 0:
            return []
        if self._sampler is not None:
            assert isinstance(self.drafter, SamplingDrafter)
            proposed, probs = self.drafter.propose_sampled(context, k, self._sampler)
        else:
            proposed, probs = list(self.drafter.propose(context, k)), []
        drafts: list[int] = []
        for token in proposed[:k]:
            if not 0 <= int(token) < self.vocab_size:
                break
            drafts.append(int(token))
        self._drafts, self._probs = drafts, probs[: len(drafts)]
        self.drafted += len(drafts)
        return list(drafts)

    def proposal(self, row: int) -> tuple[int, np.ndarray] | None:
        """What the verify call's row ``row`` checks by speculative sampling's rule: the drawn
        draft and its distribution (None: the row is sampled as it is, and compared)."""
        if row < len(self._probs):
            return self._drafts[row], self._probs[row]
        return None

    def adapt(self, drafted: int, accepted: int) -> None:
        """The last step kept ``accepted`` of its ``drafted`` tokens (the caller counts
        :attr:`accepted` as each one is kept)."""
        self.length.update(drafted, accepted)

    def timed(self, rows: int, seconds: float) -> None:
        """A model call of ``rows`` rows (the pending token and the drafts) took ``seconds``."""
        self.length.timed(rows, seconds)
