"""What happens to one sequence after the model: pick the token, decide the end, emit the text.

:class:`SequenceOutput` holds the per-request pieces (:class:`~edge_sdk.runtime.Sampler`,
:class:`~edge_sdk.runtime.IncrementalDecoder`, :class:`~edge_sdk.runtime.StopMatcher`) and the
tokens, texts and times so far. The generator's stream runs one; the engine runs one per slot.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np

from edge_sdk.runtime.constraints import FormatMatcher
from edge_sdk.runtime.detokenize import IncrementalDecoder
from edge_sdk.runtime.logprobs import PromptScorer, TokenLogprob, TokenLogprobs
from edge_sdk.runtime.options import GenerationOptions
from edge_sdk.runtime.sampling import Sampler
from edge_sdk.runtime.stats import GenerationStats, StopReason, summarize
from edge_sdk.runtime.stops import StopMatcher
from edge_sdk.tokenizer import Tokenizer

__all__ = ["GenerationResult", "SequenceOutput", "TokenEvent"]


@dataclass(frozen=True)
class TokenEvent:
    """One generated token: its id, the text it adds (may be "" while a character or a possible
    stop string is incomplete), its position in the output and when it appeared (seconds since
    the call started). In a chat turn that splits reasoning, ``text`` is what the token adds to
    the answer and ``reasoning`` what it adds to the ``<think>`` block. With the ``logprobs``
    option: ``logprob``, the token's log probability under the model, and ``top_logprobs``, the
    most likely tokens at its position (most likely first); None and () otherwise."""

    token_id: int
    text: str
    index: int
    time: float
    reasoning: str = ""
    logprob: float | None = None
    top_logprobs: tuple[TokenLogprob, ...] = ()


@dataclass(frozen=True)
class GenerationResult:
    """A finished generation. ``text`` is the streamed pieces joined (a stop string is cut);
    ``token_ids`` are every generated id, the end-of-sequence token included when it ended
    the generation. ``reasoning``: in a chat turn that splits reasoning, the ``<think>`` block's
    text ("" when the reply had none; ``text`` is then the answer alone); None otherwise.
    ``logprobs``: one entry per generated token (the ``logprobs`` option; None without it);
    ``prompt_logprobs``: one per prompt token, the first one's logprob None (the
    ``prompt_logprobs`` option; None without it)."""

    text: str
    token_ids: list[int]
    stop_reason: StopReason
    stats: GenerationStats
    reasoning: str | None = None
    logprobs: list[TokenLogprobs] | None = None
    prompt_logprobs: list[TokenLogprobs] | None = None


class SequenceOutput:
    """The output side of one generation.

    ``context`` are the ids in the model's cache before the first output (for the repetition
    penalty and the detokenizer's window); ``eos`` the ids that end it (unless the options ignore
    them); ``room`` is how many outputs fit the context (the last one is never run through the
    model). With a ``response_format`` in the options, a :class:`FormatMatcher` restricts each
    pick to what its grammar allows and ends the generation (``"stop"``) when it is complete.
    """

    def __init__(
        self,
        tokenizer: Tokenizer,
        vocab_size: int,
        context: Sequence[int],
        options: GenerationOptions,
        eos: Collection[int],
        room: int,
    ) -> None:
        self._sampler = Sampler(options.sampling, vocab_size)
        self._sampler.observe(context)
        self._decoder = IncrementalDecoder(tokenizer, list(context))
        self._stops = StopMatcher(options.stops)
        self._eos = frozenset() if options.ignore_eos else eos
        fmt = options.response_format
        self._format: FormatMatcher | None = (
            None if fmt is None else fmt.matcher(tokenizer, vocab_size, eos)
        )
        self._limit = min(options.max_new_tokens, room)
        self._length_reason: StopReason = (
            "max_new_tokens" if options.max_new_tokens <= room else "length"
        )
        self.token_ids: list[int] = []
        self.pieces: list[str] = []
        self.times: list[float] = []
        self._top = options.logprobs
        self.logprobs: list[TokenLogprobs] | None = None if self._top is None else []
        #: Scores the prompt from every position's logits (the ``prompt_logprobs`` option).
        self.prompt_scorer = (
            None if options.prompt_logprobs is None else PromptScorer(options.prompt_logprobs)
        )

    @property
    def limit(self) -> int:
        """How many tokens this generation may output (0: it only scores its prompt)."""
        return self._limit

    def push(
        self, logits: np.ndarray, now: float, drafted: tuple[int, np.ndarray] | None = None
    ) -> tuple[TokenEvent, StopReason | None]:
        """Sample the next token from ``logits`` [vocab] at time ``now``; its event, and why the
        generation ends with it (None: it goes on). ``drafted``: a draft model's sampled token
        and its distribution, checked by speculative sampling's rule (:class:`Sampler`)."""
        token = (
            self._sampler(logits, drafted=drafted)
            if self._format is None
            else self._constrained(logits, drafted)
        )
        scored: TokenLogprobs | None = None
        if self._top is not None:  # the model's own distribution: ``logits`` as it returned them
            scored = TokenLogprobs.of(logits, token, self._top)
        final: StopReason | None = None
        if token in self._eos:
            final = "eos"
        elif self._format is not None and self._format.done:
            final = "stop"
        elif len(self.token_ids) + 1 >= self._limit:
            final = self._length_reason
        stops = self._stops
        piece = stops.push(self._decoder.push(token))
        if stops.matched is None and final is not None:
            piece += stops.push(self._decoder.flush())
            if stops.matched is None:
                piece += stops.flush()
        if stops.matched is not None:
            final = "stop"
        self.token_ids.append(token)
        self.times.append(now)
        self.pieces.append(piece)
        index = len(self.token_ids) - 1
        if scored is None:
            return TokenEvent(token, piece, index, now), final
        assert self.logprobs is not None
        self.logprobs.append(scored)
        event = TokenEvent(
            token, piece, index, now, logprob=scored.logprob, top_logprobs=scored.top
        )
        return event, final

    def _constrained(
        self, logits: np.ndarray, drafted: tuple[int, np.ndarray] | None = None
    ) -> int:
        """The pick among the tokens the response format allows; the format moves past it."""
        assert self._format is not None
        token = self._sampler(logits, restrict=self._format.restrict, drafted=drafted)
        self._format.advance(token)
        return token

    def result(
        self,
        reason: StopReason,
        *,
        prompt_tokens: int,
        prefill_s: float,
        total_s: float,
        context_tokens: int,
        kv_cache_bytes: int,
        backend: str,
        cached_tokens: int = 0,
        drafted_tokens: int = 0,
        accepted_tokens: int = 0,
        model_calls: int | None = None,
    ) -> GenerationResult:
        """The finished generation with its statistics (``cached_tokens``: prompt tokens
        reused from the KV cache; the speculative counts: see
        :class:`~edge_sdk.runtime.GenerationStats`)."""
        stats: GenerationStats = summarize(
            prompt_tokens=prompt_tokens,
            token_times=self.times,
            prefill_s=prefill_s,
            total_s=total_s,
            stop_reason=reason,
            context_tokens=context_tokens,
            kv_cache_bytes=kv_cache_bytes,
            backend=backend,
            cached_tokens=cached_tokens,
            drafted_tokens=drafted_tokens,
            accepted_tokens=accepted_tokens,
            model_calls=model_calls,
        )
        return GenerationResult(
            "".join(self.pieces),
            list(self.token_ids),
            reason,
            stats,
            logprobs=None if self.logprobs is None else list(self.logprobs),
            prompt_logprobs=None if self.prompt_scorer is None else self.prompt_scorer.entries,
        )
