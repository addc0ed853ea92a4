"""The options of one generation, checked once: the CLI, the Python API, the engine and the
server build a :class:`GenerationOptions` and pass it down.

::

    options = GenerationOptions(max_new_tokens=64, temperature=0.8, seed=1, stop=["\\n\\n"])
    gen.generate("Once upon a time", options=options)
    engine.submit("The dog", options=options.replace(max_new_tokens=16))

:func:`check_fits` is the one "the prompt does not fit the context" check.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_sdk.errors import ContextFullError, GenerationError
from edge_sdk.runtime.constraints import ResponseFormat
from edge_sdk.runtime.logprobs import check_logprobs
from edge_sdk.runtime.sampling import SamplingOptions
from edge_sdk.runtime.speculative import Drafter, SpeculativeOptions, speculative_options

__all__ = ["DEFAULT_MAX_NEW_TOKENS", "GenerationOptions", "check_fits"]

DEFAULT_MAX_NEW_TOKENS = 256


@dataclass(frozen=True)
class GenerationOptions:
    """How many tokens, how to sample them, where to stop; checked when made
    (:class:`~edge_sdk.GenerationError` for a bad value).

    Sampling (``temperature``, ``top_k``, ``top_p``, ``repetition_penalty``, ``seed``) is as
    :class:`~edge_sdk.runtime.SamplingOptions` (the default is greedy). Generation stops at an
    end-of-sequence id of the bundle (unless ``ignore_eos``), at any of the ``stop`` strings (a
    string or a sequence of them; not emitted), after ``max_new_tokens``, or when prompt and
    output fill the context.

    ``response_format`` (a :class:`~edge_sdk.runtime.ResponseFormat`) constrains the output to
    JSON, a JSON schema or a grammar; generation also ends when it is complete (reason
    ``"stop"``).
    ``logprobs`` (None: off; 0 to 20): each generated token's log probability under the model
    (``TokenEvent.logprob``) and that many most likely alternatives (``top_logprobs``).
    ``prompt_logprobs`` (None: off; 0 to 20): the same for each prompt token given the tokens
    before it (``GenerationResult.prompt_logprobs``; costs a pass over every prompt position, see
    :mod:`edge_sdk.runtime.logprobs`); with it, ``max_new_tokens`` may be 0 (score the prompt,
    generate nothing).
    ``cache_prompt`` (llama-server's name): let the engine reuse the positions a KV-cache slot
    (or the generator's cache) already holds for the prompt's first tokens, and prefill only
    the rest; the output is the same either way (False: prefill the whole prompt).
    ``speculative`` (None: off): draft tokens and check them in one model call
    (:mod:`edge_sdk.runtime.speculative`): ``"ngram"``, ``"draft:PATH"``, a
    :class:`~edge_sdk.runtime.SpeculativeOptions` or a :class:`~edge_sdk.runtime.Drafter`
    (kept as a ``SpeculativeOptions``); the output is the same as without it. False is off
    too, and also refuses an :class:`~edge_sdk.runtime.Engine`'s default (a server's opt-out).
    """

    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    seed: int | None = None
    stop: str | Sequence[str] = ()
    ignore_eos: bool = False
    response_format: ResponseFormat | None = None
    logprobs: int | None = None
    prompt_logprobs: int | None = None
    cache_prompt: bool = True
    speculative: SpeculativeOptions | Drafter | str | bool | None = None

    def __post_init__(self) -> None:
        logprobs = check_logprobs("logprobs", self.logprobs)
        prompt_logprobs = check_logprobs("prompt_logprobs", self.prompt_logprobs)
        count = self.max_new_tokens
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)):
            raise GenerationError(f"max_new_tokens must be an integer, got {count!r}")
        if count < (0 if prompt_logprobs is not None else 1):
            raise GenerationError(
                f"max_new_tokens must be at least 1, got {count} "
                "(0 only with prompt_logprobs, to score a prompt)"
            )
        stops = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)
        if not all(isinstance(s, str) for s in stops):
            raise GenerationError("stop must be a string or a list of strings")
        if self.response_format is not None and not isinstance(
            self.response_format, ResponseFormat
        ):
            raise GenerationError(
                "response_format must be a ResponseFormat (ResponseFormat.json_schema(...)), "
                f"got {type(self.response_format).__name__}"
            )
        if not isinstance(self.cache_prompt, (bool, np.bool_)):
            raise GenerationError(f"cache_prompt must be True or False, got {self.cache_prompt!r}")
        sampling = SamplingOptions(
            float(self.temperature),
            int(self.top_k),
            float(self.top_p),
            float(self.repetition_penalty),
            self.seed,
        )
        normalized = {
            "max_new_tokens": int(count),
            "temperature": sampling.temperature,
            "top_k": sampling.top_k,
            "top_p": sampling.top_p,
            "repetition_penalty": sampling.repetition_penalty,
            "stop": stops,
            "ignore_eos": bool(self.ignore_eos),
            "logprobs": logprobs,
            "prompt_logprobs": prompt_logprobs,
            "cache_prompt": bool(self.cache_prompt),
            "speculative": (
                False if self.speculative is False else speculative_options(self.speculative)
            ),
        }
        for name, value in normalized.items():
            object.__setattr__(self, name, value)

    @property
    def stops(self) -> tuple[str, ...]:
        """The stop strings, as a tuple."""
        return tuple(self.stop)

    @property
    def reuses_cache(self) -> bool:
        """Whether a cached prefix may stand in for the prompt's first tokens: ``cache_prompt``,
        unless ``prompt_logprobs`` needs every prompt position run."""
        return self.cache_prompt and self.prompt_logprobs is None

    @property
    def speculation(self) -> SpeculativeOptions | None:
        """``speculative``, typed (it is normalized to this when the options are made)."""
        spec = self.speculative
        return spec if isinstance(spec, SpeculativeOptions) else None

    @property
    def sampling(self) -> SamplingOptions:
        """The sampling part, for :class:`~edge_sdk.runtime.Sampler`."""
        return SamplingOptions(
            self.temperature, self.top_k, self.top_p, self.repetition_penalty, self.seed
        )

    def replace(self, **changes: Any) -> GenerationOptions:
        """A copy with ``changes`` (checked again)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def build(cls, options: GenerationOptions | None = None, **changes: Any) -> GenerationOptions:
        """``options`` (default: the defaults) with keyword ``changes``: what the keyword
        arguments of :meth:`Generator.stream` and :meth:`Engine.submit` become."""
        if options is None:
            return cls(**changes)
        if not isinstance(options, GenerationOptions):
            raise GenerationError(
                f"options must be a GenerationOptions, got {type(options).__name__}"
            )
        return options.replace(**changes) if changes else options


def check_fits(tokens: int, context: int, *, what: str = "the prompt", advice: str = "") -> None:
    """Raise :class:`~edge_sdk.ContextFullError` unless ``tokens`` leave room for one output
    in a context of ``context`` positions. ``what`` names them in the message ("the prompt",
    "the conversation"); ``advice`` is added after "shorten it"."""
    if tokens >= context:
        raise ContextFullError(
            f"{what} takes {tokens} tokens, but the context holds {context} "
            f"(prompt and output together): shorten it{advice}",
            needed=tokens,
            limit=context,
        )
