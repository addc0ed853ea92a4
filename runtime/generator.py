"""The generator: a loaded bundle on a backend, streaming tokens with statistics.

::

    gen = edge_sdk.runtime.load("demo-int8")
    for event in gen.stream("Once upon a time", max_new_tokens=64):
        print(event.text, end="", flush=True)
    result = gen.generate("Once upon a time", max_new_tokens=64, temperature=0.8, seed=1)
    print(result.stats.decode_tokens_per_s)

One generator runs one sequence at a time (one KV cache): starting a new stream ends the
previous one. :meth:`Generator.chat` keeps the conversation in the cache between turns. A new
stream reuses the positions the cache holds for the first tokens of its prompt (the longest
common prefix, at most all but the prompt's last token, when the backend can cut its cache
there exactly; see :mod:`edge_sdk.runtime.engine`'s prompt cache) and runs only the rest,
unless ``cache_prompt=False``; :attr:`GenerationStats.cached_tokens` says how many it reused.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from collections.abc import Generator as PyGenerator
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

import numpy as np

from edge_sdk.bundle import Bundle, load_bundle
from edge_sdk.chat_template import ChatTemplate, Message, check_template_variables
from edge_sdk.errors import GenerationError
from edge_sdk.runtime.backend import Backend, BackendOptions, create_backend
from edge_sdk.runtime.conversation import Conversation
from edge_sdk.runtime.drafters import DraftModelDrafter, NGramDrafter
from edge_sdk.runtime.options import DEFAULT_MAX_NEW_TOKENS, GenerationOptions, check_fits
from edge_sdk.runtime.reasoning import ReasoningSplitter
from edge_sdk.runtime.sequence import GenerationResult, SequenceOutput, TokenEvent
from edge_sdk.runtime.speculative import Drafter, Speculation
from edge_sdk.runtime.stats import StopReason
from edge_sdk.tokenizer import Tokenizer

__all__ = [
    "DEFAULT_MAX_NEW_TOKENS",
    "ChatPrompt",
    "Conversation",
    "GenerationResult",
    "Generator",
    "Stream",
    "TokenEvent",
    "load",
]

Prompt = str | Sequence[int]


class ChatPrompt(NamedTuple):
    """A conversation laid out by the chat template: its text and its token ids."""

    text: str
    ids: list[int]


def _checked(template_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """Extra template variables, checked (:class:`~edge_sdk.GenerationError` otherwise)."""
    if template_kwargs is None:
        return {}
    if not isinstance(template_kwargs, Mapping) or not all(
        isinstance(k, str) for k in template_kwargs
    ):
        raise GenerationError("template_kwargs must be a mapping of variable names to values")
    check_template_variables(template_kwargs)
    return dict(template_kwargs)


def load(
    bundle_path: str | os.PathLike[str],
    backend: str = "auto",
    *,
    threads: int | None = None,
    max_context: int | None = None,
    verify: bool = True,
    session_config: dict[str, str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    optimized_cache: bool = True,
    device_id: int = 0,
    fused_graph: bool = True,
) -> Generator:
    """Load a bundle (checking its manifest and hashes unless ``verify=False``) on a backend.

    ``backend``: ``"auto"`` (TensorRT EP, then CUDA EP, then CPU: the first usable), or one of
    ``"ort-tensorrt"``, ``"ort-cuda"``, ``"ort-cpu"``, ``"tensorrt"``. ``threads``: CPU threads
    (default: one per physical core). ``max_context``: positions the KV cache holds, prompt
    and output together (default and maximum: the bundle's ``max_sequence_length``).
    ``cache_dir``: TensorRT engines and optimized CPU graphs (default ``$EDGE_SDK_CACHE_DIR`` or
    ``~/.cache/edge-sdk``); ``optimized_cache=False`` loads the bundle's graph as it is (more
    memory, same speed). ``fused_graph``: on ``ort-cpu``, run the bundle's onnxruntime graph
    (fused attention and norms, in-place KV cache; about 2x faster decode) when the bundle has
    one; False runs the standard graph.
    """
    bundle = load_bundle(bundle_path, verify=verify)
    if threads is not None and threads < 1:
        raise GenerationError(f"threads must be at least 1, got {threads}")
    options = BackendOptions(
        threads=threads,
        session_config=dict(session_config or {}),
        cache_dir=Path(cache_dir) if cache_dir else None,
        optimized_cache=optimized_cache,
        device_id=device_id,
        fused_graph=fused_graph,
    )
    engine = create_backend(backend, bundle, options, activate=True)
    return Generator(bundle, engine, Tokenizer(bundle.tokenizer_path), max_context)


class Generator:
    """Streams tokens from one bundle on one backend (see the module docstring)."""

    def __init__(
        self, bundle: Bundle, backend: Backend, tokenizer: Tokenizer, max_context: int | None = None
    ) -> None:
        limit = bundle.max_sequence_length
        if max_context is not None and not 2 <= max_context <= limit:
            raise GenerationError(
                f"max_context must be between 2 and the bundle's limit of {limit}, "
                f"got {max_context}"
            )
        self.bundle = bundle
        self.backend = backend
        self.tokenizer = tokenizer
        self.max_context = max_context or limit
        self.eos_token_ids = frozenset(bundle.config.eos_token_ids)
        self._lock = threading.Lock()
        self._epoch = 0
        self._context: list[int] = []  # ids in the KV cache
        self._pending: list[int] = []  # sampled, not yet run through the model
        self._current: Stream | None = None
        self._owner: Conversation | None = None  # whose sequence the cache holds (None: a stream)
        self._chat_template: ChatTemplate | None = None
        self._draft_models: dict[Path, DraftModelDrafter] = {}  # by the draft bundle's path

    # -- public API -----------------------------------------------------------------------------

    def stream(
        self, prompt: Prompt, *, options: GenerationOptions | None = None, **changes: Any
    ) -> Stream:
        """Start generating after ``prompt`` (text, or token ids); iterate for events.

        ``options``: a :class:`~edge_sdk.runtime.GenerationOptions` (default greedy, at most
        :data:`DEFAULT_MAX_NEW_TOKENS` tokens); keyword arguments (``max_new_tokens=64``,
        ``temperature=0.8``, ``stop=...``: its fields) change it. Generation stops at an
        end-of-sequence id of the bundle (unless ``ignore_eos``), at any of the ``stop`` strings
        (not emitted), after ``max_new_tokens``, or when prompt + output reach ``max_context``
        (reason ``"length"``).
        """
        return self._start(prompt, options=GenerationOptions.build(options, **changes))

    def generate(
        self,
        prompt: Prompt,
        *,
        on_token: Callable[[TokenEvent], object] | None = None,
        **options: Any,
    ) -> GenerationResult:
        """Generate to the end and return the text with statistics.

        ``on_token`` (the callback form) is called with each :class:`TokenEvent`; returning
        ``False`` from it stops generation (reason ``"cancelled"``). Other options: as
        :meth:`stream`.
        """
        return self.stream(prompt, **options).run(on_token)

    def chat(
        self,
        system: str | None = None,
        *,
        template: bool = True,
        template_kwargs: Mapping[str, Any] | None = None,
        reasoning: bool | None = None,
    ) -> Conversation:
        """A conversation that keeps every turn in the KV cache (see :class:`Conversation`).

        With ``template`` (the default), each turn is a user message laid out by the bundle's
        chat template (:attr:`chat_template`), after an optional ``system`` message; with
        ``template=False`` the text of each turn is fed exactly as given. ``template_kwargs``:
        extra template variables (``{"enable_thinking": False}`` for Qwen3). ``reasoning``:
        split a ``<think>`` block from the answer (events' and results' ``reasoning``); None
        (default): when the template is a thinking model's.
        """
        return Conversation(self, system, template, template_kwargs, reasoning)

    @property
    def chat_template(self) -> ChatTemplate:
        """The bundle's chat template (the plain ``role: content`` fallback when it has none)."""
        if self._chat_template is None:
            self._chat_template = self.bundle.chat_template
        return self._chat_template

    def chat_prompt(
        self,
        messages: Sequence[Message],
        add_generation_prompt: bool = True,
        template_kwargs: Mapping[str, Any] | None = None,
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        template: ChatTemplate | None = None,
    ) -> ChatPrompt:
        """``messages`` laid out by :attr:`chat_template` (``template_kwargs``: extra template
        variables), as text and token ids (the template writes the special tokens; the plain
        fallback gets the tokenizer's own, e.g. BOS). ``tools``: the OpenAI tool list, for a
        template that renders them (``ChatTemplate.supports_tools``); assistant messages may
        carry ``tool_calls`` and ``role: "tool"`` messages the results. ``template``: render
        with this one instead (``ChatTemplate.from_file``)."""
        template = template or self.chat_template
        text = template.render(
            messages,
            add_generation_prompt=add_generation_prompt,
            tools=tools,
            **_checked(template_kwargs),
        )
        return ChatPrompt(text, self.tokenizer.encode(text, add_special_tokens=template.is_plain))

    def chat_ids(
        self,
        messages: Sequence[Message],
        add_generation_prompt: bool = True,
        template_kwargs: Mapping[str, Any] | None = None,
    ) -> list[int]:
        """The token ids of :meth:`chat_prompt`."""
        return self.chat_prompt(messages, add_generation_prompt, template_kwargs).ids

    def cancel(self) -> None:
        """Stop the running stream at its next token (safe to call from any thread)."""
        current = self._current
        if current is not None:
            current.cancel()

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Token ids of ``text`` with this bundle's tokenizer."""
        return self.tokenizer.encode(text, add_special_tokens=add_special_tokens)

    @property
    def kv_cache_bytes(self) -> int:
        """Bytes of the KV cache (allocated at the first generation for ``max_context``)."""
        return self.backend.cache_bytes

    def close(self) -> None:
        """Release the backend's session and cache (and those of draft models)."""
        self.backend.deactivate()
        for drafter in self._draft_models.values():
            drafter.close()
        self._draft_models.clear()

    def speculation(self, options: GenerationOptions) -> Speculation | None:
        """The speculative state of a generation with ``options`` (None: it does not
        speculate); a :class:`~edge_sdk.GenerationError` naming the fix when this backend
        cannot speculate or the draft bundle does not fit this one. A draft bundle is loaded
        once, on this generator's backend kind with its session config, on
        :data:`~edge_sdk.runtime.drafters.DRAFT_THREADS` thread(s), and kept until :meth:`close`."""
        spec = options.speculation
        if spec is None:
            return None
        problem = self.backend.speculation_problem()
        if problem is not None:
            raise GenerationError(problem)
        drafter: Drafter
        if spec.method == "ngram":
            drafter = NGramDrafter(spec.ngram_max, spec.ngram_min)
        elif spec.method == "draft":
            assert spec.draft is not None
            path = Path(spec.draft).expanduser().resolve()
            if path not in self._draft_models:
                self._draft_models[path] = DraftModelDrafter.load(
                    path,
                    self.bundle,
                    backend=self.backend.name,
                    capacity=self.max_context,
                    session_config=self.backend.options.session_config,
                    cache_dir=self.backend.options.cache_dir,
                )
            drafter = self._draft_models[path]
        else:
            assert spec.drafter is not None
            drafter = spec.drafter
        return Speculation(spec, drafter, self.bundle.config.vocab_size, options.sampling)

    def __enter__(self) -> Generator:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals ------------------------------------------------------------------------------

    def _start(
        self,
        prompt: Prompt,
        *,
        options: GenerationOptions,
        conversation: Conversation | None = None,
        whole: bool = False,
        splitter: ReasoningSplitter | None = None,
    ) -> Stream:
        started = time.perf_counter()
        continuing = conversation is not None and conversation._started
        if continuing and self._owner is not conversation:
            raise GenerationError(
                "another generation on this generator replaced the "
                "conversation's KV cache; start a new one with .chat()"
            )
        ids = self.prompt_ids(prompt, add_special_tokens=not continuing)
        speculation = self.speculation(options)
        with self._lock:
            if self._current is not None:
                self._current.cancel()
            self._epoch += 1
            if continuing and whole:  # the whole conversation again: run what the cache lacks
                self._pending = []
                if len(ids) > len(self._context) and ids[: len(self._context)] == self._context:
                    ids = ids[len(self._context) :]
                else:  # an earlier turn tokenizes differently now: run it all again
                    continuing = False
            cached = 0
            if not continuing:
                if options.reuses_cache and conversation is None:
                    cached = self._keep_prefix(ids)
                    ids = ids[cached:]
                self._context, self._pending = self._context[:cached], []
            self._owner = conversation
            used = len(self._context) + len(self._pending) + len(ids)
            if used >= self.max_context:
                later = conversation is not None and conversation._started
                check_fits(
                    used,
                    self.max_context,
                    what="the conversation" if later else "the prompt",
                    advice=(" or start a new conversation" if later else "")
                    + (
                        f", or load with a larger max_context (up to "
                        f"{self.bundle.max_sequence_length})"
                        if self.max_context < self.bundle.max_sequence_length
                        else ""
                    ),
                )
            stream = Stream(self, self._epoch, ids, started, options, splitter, cached, speculation)
            self._current = stream
        return stream

    def _keep_prefix(self, ids: list[int]) -> int:
        """How many of ``ids``' first positions the cache keeps for a new stream (it is cut
        there; 0: it starts empty). Called with the lock held."""
        if self.backend.cache_length != len(self._context):
            return 0  # the backend was reset or run behind the generator's back: trust nothing
        shared = 0
        for held, new in zip(self._context, ids, strict=False):
            if held != new:
                break
            shared += 1
        keep = min(shared, len(ids) - 1)
        return keep if keep and self.backend.truncate(keep) else 0

    def prompt_ids(self, prompt: Prompt, add_special_tokens: bool = True) -> list[int]:
        """``prompt`` as checked token ids: text is tokenized, ids are checked against the
        vocabulary; an empty prompt is a :class:`~edge_sdk.GenerationError`."""
        if isinstance(prompt, str):
            if not prompt:
                raise GenerationError("the prompt is empty: give some text to continue")
            ids = self.tokenizer.encode(prompt, add_special_tokens=add_special_tokens)
        else:
            ids = [int(i) for i in prompt]
            vocab = self.bundle.config.vocab_size
            bad = [i for i in ids if not 0 <= i < vocab]
            if bad:
                raise GenerationError(f"token ids {bad[:5]} are outside the vocabulary of {vocab}")
        if not ids:
            raise GenerationError("the prompt is empty: give some text to continue")
        return ids


class Stream:
    """Iterator over the :class:`TokenEvent` s of one generation.

    Break out of the loop, call :meth:`close` or :meth:`cancel` to stop early; the generator
    can be used again at once. After the end, :attr:`result` holds the
    :class:`GenerationResult`. With a ``splitter`` (a chat turn that splits reasoning), each
    event's ``text`` is its part of the answer and ``reasoning`` its part of the reasoning.
    :attr:`prompt_ids` are the prompt's ids that run, after the ``cached`` ones the cache held.
    """

    def __init__(
        self,
        owner: Generator,
        epoch: int,
        prompt_ids: list[int],
        started: float,
        options: GenerationOptions,
        splitter: ReasoningSplitter | None = None,
        cached: int = 0,
        speculation: Speculation | None = None,
    ) -> None:
        self._owner = owner
        self._speculation = speculation
        self._calls = 0  # model calls that produced output tokens (and re-runs: _cut)
        self._checkpoint = -1  # the cache length at the last verify call's checkpoint
        self._verified = (0, 0.0)  # the last verify call's rows and seconds (timed after _cut)
        self.cached = cached
        self._splitter = splitter
        self._epoch = epoch
        self.prompt_ids = prompt_ids
        self._started = started
        self._options = options
        self._cancelled = threading.Event()
        self._events = self._run()
        self.result: GenerationResult | None = None

    def __iter__(self) -> Iterator[TokenEvent]:
        return self

    def __next__(self) -> TokenEvent:
        return next(self._events)

    def cancel(self) -> None:
        """Stop at the next token (safe from any thread); the stream then ends normally."""
        self._cancelled.set()

    def close(self) -> None:
        """Stop now (from the thread that iterates)."""
        self._events.close()

    def run(self, on_token: Callable[[TokenEvent], object] | None = None) -> GenerationResult:
        """Consume the stream, calling ``on_token`` per event (``False`` stops); the result."""
        for event in self:
            if on_token is not None and on_token(event) is False:
                self.cancel()
        assert self.result is not None
        return self.result

    def _run(self) -> PyGenerator[TokenEvent, None, None]:
        gen = self._owner
        backend = gen.backend
        clock = time.perf_counter
        output: SequenceOutput | None = None
        reason: StopReason = "cancelled"
        prefill_s = 0.0
        try:
            with gen._lock:
                if gen._epoch != self._epoch:
                    return  # a newer stream took the generator before this one started
                feed = gen._pending + self.prompt_ids
                if not gen._context:
                    backend.allocate(gen.max_context)
                if self._options.prompt_logprobs is not None:  # every position's logits
                    rows = backend.forward_all(np.asarray(feed, dtype=np.int64))
                    logits = rows[-1]
                else:
                    logits = backend.forward(np.asarray(feed, dtype=np.int64))
                gen._context += feed
                gen._pending = []
            prefill_s = clock() - self._started
            self._calls = 1
            output = SequenceOutput(
                gen.tokenizer,
                gen.bundle.config.vocab_size,
                gen._context,
                self._options,
                gen.eos_token_ids,
                room=gen.max_context - len(gen._context),
            )
            if output.prompt_scorer is not None:
                output.prompt_scorer.push(feed, rows)
                del output.prompt_scorer.entries[: len(feed) - len(self.prompt_ids)]
            if output.limit == 0:  # it only scores its prompt
                reason = "max_new_tokens"
            drafts: list[int] = []  # rows[i] checks drafts[i] (rows[-1]: the pick after all)
            rows, row = logits[None], 0
            spec = self._speculation
            while output.limit and not self._cancelled.is_set():
                drafted = None if spec is None else spec.proposal(row)
                event, final = output.push(rows[row], clock() - self._started, drafted)
                hit = row < len(drafts) and event.token_id == drafts[row]
                if hit and spec is not None:
                    spec.accepted += 1
                with gen._lock:
                    if gen._epoch != self._epoch:
                        break  # superseded: leave the new stream's state alone
                    gen._pending = [event.token_id]
                yield self._split(event, final is not None)
                if final is not None:
                    reason = final
                    break
                with gen._lock:
                    if gen._epoch != self._epoch or self._cancelled.is_set():
                        break
                    if hit:
                        gen._context += gen._pending  # a draft accepted: the cache holds it
                        gen._pending, row = [], row + 1
                        continue
                    rows, drafts = self._next_rows(output, drafts, row)
                    row = 0
        finally:
            if gen._current is self:
                gen._current = None
            with gen._lock:  # drafts the stream ended before checking leave the cache
                if gen._epoch == self._epoch and not self._cut():
                    gen._context, gen._pending = [], []
            if output is None:  # ended before the prompt ran: no tokens
                unconstrained = self._options.replace(response_format=None)  # nothing to mask
                output = SequenceOutput(
                    gen.tokenizer, gen.bundle.config.vocab_size, (), unconstrained, (), room=1
                )
            spec = self._speculation
            self.result = output.result(
                reason,
                prompt_tokens=self.cached + len(self.prompt_ids),
                prefill_s=prefill_s,
                total_s=clock() - self._started,
                context_tokens=len(gen._context) + len(gen._pending),
                kv_cache_bytes=backend.cache_bytes,
                backend=backend.device,
                cached_tokens=self.cached,
                drafted_tokens=0 if spec is None else spec.drafted,
                accepted_tokens=0 if spec is None else spec.accepted,
                model_calls=self._calls,
            )
            if self._splitter is not None:
                self._splitter.flush()  # what a cancelled stream held back
                self.result = dataclasses.replace(
                    self.result, text=self._splitter.content, reasoning=self._splitter.reasoning
                )

    def _next_rows(
        self, output: SequenceOutput, drafts: list[int], accepted: int
    ) -> tuple[np.ndarray, list[int]]:
        """Run the pending token (and, speculating, new drafts after it) with the lock held:
        the logits rows to push and the drafts they check. ``drafts`` of the last call were
        checked up to ``accepted``; the rest leave the cache first."""
        gen, backend, spec = self._owner, self._owner.backend, self._speculation
        self._calls += 1
        if spec is None:
            logits = backend.forward(np.asarray(gen._pending, dtype=np.int64))
            gen._context += gen._pending
            gen._pending = []
            return logits[None], []
        spec.adapt(len(drafts), accepted)
        began = time.perf_counter()
        if not self._cut():
            raise GenerationError(f"{backend.name} could not cut rejected drafts from its cache")
        rows_run, seconds = self._verified
        if rows_run:  # a re-run on a partial accept is part of the verify call's cost
            spec.timed(rows_run, seconds + time.perf_counter() - began)
            self._verified = (0, 0.0)
        pending = gen._pending
        gen._context += pending  # extended in place: no copy of the context per step
        gen._pending = []
        room = min(
            output.limit - len(output.token_ids) - 1,  # the last row's pick needs no draft
            gen.max_context - len(gen._context) - 1,
        )
        began = time.perf_counter()  # drafting counts: a draft model's calls cost too
        new = spec.draft(gen._context, room)
        ids = np.asarray(pending + new, dtype=np.int64)
        if not new:
            rows = backend.forward(ids)[None]
            spec.timed(ids.size, time.perf_counter() - began)
            return rows, new
        self._checkpoint = backend.cache_length
        backend.checkpoint()  # a hybrid model's states, for a partial accept (_cut)
        rows = backend.forward_all(ids)
        self._verified = (ids.size, time.perf_counter() - began)
        return rows, new

    def _cut(self) -> bool:
        """Cut the rejected drafts from the cache (it then holds the context), with the lock
        held; False when it cannot. Where the cache cannot be cut by a length (a hybrid
        model's recurrent states) it goes back to the verify call's checkpoint and runs the
        accepted tokens again: one more model call on a partial accept."""
        gen, backend = self._owner, self._owner.backend
        length, mark = len(gen._context), self._checkpoint
        if backend.cache_length <= length or backend.truncate(length):
            return True
        if not 0 <= mark < length or not backend.truncate(mark):
            return False
        backend.forward(np.asarray(gen._context[mark:length], dtype=np.int64))
        self._calls += 1
        return True

    def _split(self, event: TokenEvent, last: bool) -> TokenEvent:
        """``event`` with its text split into answer and reasoning (as it is without one)."""
        splitter = self._splitter
        if splitter is None:
            return event
        delta = splitter.push(event.text)
        if last:
            end = splitter.flush()
            return dataclasses.replace(
                event, text=delta.content + end.content, reasoning=delta.reasoning + end.reasoning
            )
        return dataclasses.replace(event, text=delta.content, reasoning=delta.reasoning)
