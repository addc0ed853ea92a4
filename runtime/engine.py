"""Continuous batching: many requests share one model through KV-cache slots.

::

    from edge_sdk.runtime import load
    from edge_sdk.runtime.engine import Engine

    with Engine(load("demo-int8"), slots=4) as engine:
        a = engine.submit("Once upon a time", max_new_tokens=64)  # or options=...
        b = engine.submit("The dog", max_new_tokens=64)
        print(a.wait().text, b.wait().text)

Scheduling is per iteration, as in Orca, vLLM and llama.cpp's slots. Between two model calls
the engine's thread

1. ends cancelled requests (their slots are free for the next call);
2. admits waiting requests into free slots, first come, first served (the slot is chosen by the
   prompt cache, below);
3. runs one prefill chunk (at most 256 tokens) of the request admitted first among those still
   prefilling; when its prompt is done, its first token is sampled;
4. runs one decode step for every request that has a token to run, all slots in one call
   (:mod:`edge_sdk.runtime.slots`).

A long prompt thus delays the running requests by one chunk per token at most. Sampling, stop
strings, detokenization and statistics are per request (:class:`SequenceOutput`), so a request's
greedy output equals what :meth:`Generator.generate` gives for it alone. Backends that cannot
decode rows of different lengths in one call get one slot (requests take turns):
:attr:`Engine.batched` says which.

A request with ``prompt_logprobs`` prefills with every position's logits
(:meth:`SlotModel.prefill_all`: one call per chunk, also on a fused CPU graph with
``logits_to_keep``; one call per prompt token on an older one, so its chunk holds the others up
longer); it needs every prompt position run, so it cannot start
from a cached prefix.

**Speculative decoding** (a request's ``speculative`` option, or the engine's default): while
a request runs alone in the engine, each step checks its pending token and the drafts in one
:meth:`SlotModel.prefill_all` on its slot and cuts the rejected ones (:meth:`SlotModel.truncate`;
a hybrid row goes back to its :meth:`SlotModel.mark` taken before the call and runs the accepted
tokens again, one more call on a partial accept; step kind ``"verify"``, whose ``tokens`` are the
tokens it output); beside other requests it
decodes in the batch like them (a batched verify step is not done: see runtime/README.md).

**Prompt (prefix) cache** (:mod:`edge_sdk.runtime.prompt_cache`): a slot keeps what it holds
after its request ends; a new request goes to the free slot that shares the longest prefix with
its prompt and prefills only the rest (``cache_prompt=False`` per request, or
``Engine(..., prefix_cache=False)``: the whole prompt). The greedy output is the same token for
token either way, up to the 8-bit fused kernel's rounding (runtime/README.md, "Prompt cache").
:attr:`GenerationStats.cached_tokens` says how many prompt tokens a request reused.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from edge_sdk.chat_template import ChatTemplate, Message
from edge_sdk.errors import GenerationError
from edge_sdk.runtime.generator import Generator, Prompt
from edge_sdk.runtime.options import GenerationOptions, check_fits
from edge_sdk.runtime.prompt_cache import PromptCache
from edge_sdk.runtime.request import EngineClosedError, QueueFullError, Request
from edge_sdk.runtime.sequence import SequenceOutput
from edge_sdk.runtime.slots import PREFILL_CHUNK, SingleSlotModel, SlotModel
from edge_sdk.runtime.speculative import Speculation, SpeculativeOptions, speculative_options

__all__ = ["Engine", "EngineClosedError", "QueueFullError", "Request", "StepRecord"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepRecord:
    """One model call: when it ran (``time.perf_counter()``), what kind, and how many tokens it
    ran for each request (request id -> tokens)."""

    start: float
    end: float
    kind: str  # "prefill", "decode" or "verify" (speculative: tokens = tokens it output)
    tokens: dict[int, int]


class Engine:
    """Runs requests on ``generator``'s model in ``slots`` KV-cache rows (module docstring).

    The engine owns the generator: :meth:`close` closes it. ``max_queue`` requests may wait
    beyond the free slots; one more raises :class:`QueueFullError`. A model call that fails
    ends the requests it ran (stop reason ``"cancelled"``, :attr:`Request.error` set; waiting on
    them raises) and the engine goes on; :attr:`failed` is set if the engine's thread itself
    died (every request then ends the same way). ``prefix_cache=False`` turns the prompt cache
    off for every request; ``prefix_store_bytes``: the size of its host store of evicted
    prefixes (0: none; :mod:`edge_sdk.runtime.prompt_cache`). ``speculative``: the
    speculative decoding of requests whose options leave it None (``speculative=False``
    opts out); a request speculates only while it runs alone (module docstring).
    """

    def __init__(
        self,
        generator: Generator,
        *,
        slots: int = 4,
        max_queue: int = 64,
        prefix_cache: bool = True,
        prefix_store_bytes: int = 0,
        speculative: SpeculativeOptions | str | None = None,
    ) -> None:
        if slots < 1:
            raise GenerationError(f"slots must be at least 1, got {slots}")
        if max_queue < 0:
            raise GenerationError(f"max_queue must be >= 0, got {max_queue}")
        self.generator = generator
        self.bundle = generator.bundle
        self.tokenizer = generator.tokenizer
        self.chat_template: ChatTemplate = self.bundle.chat_template
        self.max_context = generator.max_context
        self.max_queue = max_queue
        model = generator.backend.slot_model(slots, self.max_context)
        self._model: SlotModel = model or SingleSlotModel(generator.backend, self.max_context)
        self._vocab = self.bundle.config.vocab_size
        self._eos = generator.eos_token_ids
        self._waiting: deque[Request] = deque()
        self._active: dict[int, Request] = {}  # slot -> request
        self._cache = PromptCache(self._model, prefix_cache, prefix_store_bytes)
        self._cond = threading.Condition()
        self._closing = False
        self._next_id = 0
        self._listeners: list[Callable[[StepRecord], None]] = []
        self._thread: threading.Thread | None = None
        self._closed = False
        #: Why the engine's thread stopped, if it died (None while it runs or after close()).
        self.failed: BaseException | None = None
        #: How requests that leave ``speculative`` unset (None) speculate (checked now).
        self.speculative = speculative_options(speculative)
        if self.speculative is not None:
            self._speculation(GenerationOptions(speculative=self.speculative))

    # -- state ----------------------------------------------------------------------------------

    @property
    def slots(self) -> int:
        """KV-cache rows: requests that run at once."""
        return self._model.slots

    @property
    def batched(self) -> bool:
        """Whether a decode step runs every slot in one model call (else: one slot)."""
        return self._model.batched

    @property
    def running(self) -> int:
        """Requests in slots now."""
        return len(self._active)

    @property
    def waiting(self) -> int:
        """Requests queued for a slot."""
        return len(self._waiting)

    @property
    def prefix_cache(self) -> bool:
        """Whether requests may reuse what a slot holds (the prompt cache)."""
        return self._cache.enabled

    @property
    def kv_cache_bytes(self) -> int:
        """Bytes of KV cache allocated for all slots."""
        return self._model.nbytes

    @property
    def kv_cache_used(self) -> float:
        """Share of all slots' positions in use by running requests (0 to 1)."""
        lengths = self._model.lengths
        used = sum(lengths[s] for s in list(self._active))
        return used / (self._model.slots * self._model.capacity)

    def add_step_listener(self, listener: Callable[[StepRecord], None]) -> None:
        """Call ``listener`` (on the engine's thread) after every model call."""
        self._listeners.append(listener)

    # -- requests -------------------------------------------------------------------------------

    def encode_chat(
        self, messages: Sequence[Message], add_generation_prompt: bool = True
    ) -> list[int]:
        """The conversation rendered with the bundle's chat template, as token ids (extra
        template variables: ``engine.generator.chat_prompt``)."""
        return self.generator.chat_ids(messages, add_generation_prompt=add_generation_prompt)

    def submit(
        self,
        prompt: Prompt,
        *,
        on_event: Callable[[Any], None] | None = None,
        options: GenerationOptions | None = None,
        **changes: Any,
    ) -> Request:
        """Queue a generation of ``prompt`` (text, tokenized as :meth:`Generator.stream` does,
        or token ids); ``options`` (a :class:`GenerationOptions`) and keyword changes to them
        as :meth:`Generator.stream`. ``on_event`` is called on the engine's thread with each
        :class:`TokenEvent` and finally the :class:`GenerationResult`; it must not block.
        Without it, iterate the request or :meth:`Request.wait`. Raises
        :class:`GenerationError` for bad options or a prompt that does not fit the context,
        :class:`QueueFullError`, :class:`EngineClosedError`."""
        submitted = time.perf_counter()
        checked = GenerationOptions.build(options, **changes)
        if checked.speculative is None and self.speculative is not None:
            checked = checked.replace(speculative=self.speculative)
        ids = self.generator.prompt_ids(prompt)
        check_fits(len(ids), self.max_context)
        output = SequenceOutput(
            self.tokenizer, self._vocab, ids, checked, self._eos, room=self.max_context - len(ids)
        )
        speculation = self._speculation(checked)
        with self._cond:
            if self.failed is not None:
                raise GenerationError(f"the engine stopped after a failure: {self.failed}")
            if self._closing:
                raise EngineClosedError("the engine is shutting down: it takes no new requests")
            free = self.slots - len(self._active)
            if len(self._waiting) >= self.max_queue + free:
                raise QueueFullError(
                    f"{len(self._waiting)} requests already wait for one of "
                    f"{self.slots} slots: try again shortly"
                )
            self._next_id += 1
            request = Request(
                self._next_id,
                ids,
                output,
                submitted,
                on_event,
                self._wake,
                cache_prompt=checked.reuses_cache,
            )
            request.speculation = speculation
            self._waiting.append(request)
            self._cond.notify()
        self.start()
        return request

    def _speculation(self, options: GenerationOptions) -> Speculation | None:
        """A request's speculative state (None: it does not speculate); refused, before it is
        queued, where the slots cannot check drafts in one call and cut them."""
        if options.speculation is None:
            return None
        if not self._model.multi_row:
            raise GenerationError(
                "this bundle's fused graph returns the last position's logits only: export "
                "it again to speculate in the engine, or send the request without speculative"
            )
        return self.generator.speculation(options)

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the engine's thread (done by the first :meth:`submit` too)."""
        with self._cond:
            if self._thread is None and not self._closing:
                self._thread = threading.Thread(
                    target=self._loop, name="edge-sdk-engine", daemon=True
                )
                self._thread.start()

    def close(self, drain: bool = True, timeout: float | None = None) -> None:
        """Take no new requests; with ``drain``, let queued and running ones finish (those left
        after ``timeout`` seconds are cancelled), else cancel them now; then stop the thread and
        close the generator. Safe to call twice."""
        with self._cond:
            if self._closed:
                return
            self._closing = True
            thread = self._thread
            if not drain:
                self._cancel_all()
            self._cond.notify()
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                with self._cond:
                    self._cancel_all()
                    self._cond.notify()
                thread.join()
        with self._cond:
            self._closed = True
        self._model.close()
        self.generator.close()

    def __enter__(self) -> Engine:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(drain=exc is None)

    # -- the engine's thread --------------------------------------------------------------------

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify()

    def _cancel_all(self) -> None:
        for request in (*self._waiting, *self._active.values()):
            request.cancel_quietly()

    def _loop(self) -> None:
        try:
            self._serve()
        except BaseException as exc:  # noqa: BLE001 - engine bug: end every request, say why
            _log.exception("the engine's thread failed")
            with self._cond:
                self.failed = exc
                for slot, request in list(self._active.items()):
                    self._finish(slot, request, "cancelled", error=exc)
                while self._waiting:
                    request = self._waiting.popleft()
                    request.finish(self._empty_result(request), exc)

    def _serve(self) -> None:
        while True:
            with self._cond:
                self._end_cancelled()
                self._admit()
                if not self._active:
                    if self._closing and not self._waiting:
                        return
                    self._cond.wait()
                    continue
            try:
                self._iterate()
            except Exception as exc:  # noqa: BLE001 - model failure: fail the running requests, go on
                _log.exception("the engine's model call failed")
                with self._cond:
                    for slot, request in list(self._active.items()):
                        self._finish(slot, request, "cancelled", error=exc)

    def _end_cancelled(self) -> None:
        for request in [r for r in self._waiting if r.cancelled]:
            self._waiting.remove(request)
            request.finish(self._empty_result(request))
        for slot, request in list(self._active.items()):
            if request.cancelled:
                self._finish(slot, request, "cancelled")

    def _empty_result(self, request: Request) -> Any:
        """The result of a request that ends before it ran (cancelled while waiting)."""
        return request.output.result(
            "cancelled",
            prompt_tokens=len(request.prompt_ids),
            prefill_s=0.0,
            total_s=time.perf_counter() - request.submitted,
            context_tokens=0,
            kv_cache_bytes=self._model.nbytes,
            backend=self._model.device,
        )

    def _admit(self) -> None:
        free = [s for s in range(self.slots) if s not in self._active]
        while free and self._waiting:
            request = self._waiting.popleft()
            slot, cached = self._cache.admit(free, request.prompt_ids, request.cache_prompt)
            free.remove(slot)
            request.slot, request.admitted = slot, time.perf_counter()
            request.prefilled = request.cached = cached
            self._active[slot] = request

    def _iterate(self) -> None:
        prefilling = [r for r in self._active.values() if r.prefilled < len(r.prompt_ids)]
        if prefilling:
            self._prefill_chunk(min(prefilling, key=lambda r: r.admitted))
        decoding = [r for r in self._active.values() if r.pending is not None]
        if len(decoding) == 1 == len(self._active) and self._verify(decoding[0]):
            return  # alone: it speculated
        if decoding:
            self._decode(decoding)

    def _record(self, start: float, kind: str, tokens: dict[int, int]) -> float:
        end = time.perf_counter()
        record = StepRecord(start, end, kind, tokens)
        for listener in self._listeners:
            try:
                listener(record)
            except Exception:  # noqa: BLE001 - a listener's bug must not stop the engine
                _log.exception("an engine step listener failed")
        return end

    def _prefill_chunk(self, request: Request) -> None:
        assert request.slot is not None
        chunk = request.prompt_ids[request.prefilled : request.prefilled + PREFILL_CHUNK]
        start = time.perf_counter()
        scorer = request.output.prompt_scorer
        if scorer is None:
            logits = self._model.prefill(request.slot, chunk)
        else:  # prompt logprobs: every position's logits
            rows = self._model.prefill_all(request.slot, chunk)
            scorer.push(chunk, rows)
            logits = rows[-1]
        self._cache.ran(request.slot, chunk)
        now = self._record(start, "prefill", {request.id: len(chunk)})
        request.prefilled += len(chunk)
        if request.prefilled == len(request.prompt_ids):
            self._cache.prompt_done(request.slot)
            request.prefill_s = now - request.admitted
            request.calls += 1
            if request.output.limit == 0:  # it only scores its prompt
                with self._cond:
                    self._finish(request.slot, request, "max_new_tokens")
                return
            self._emit(request, logits, now)

    def _decode(self, requests: list[Request]) -> None:
        slots = [r.slot for r in requests]
        tokens = [r.pending for r in requests]
        start = time.perf_counter()
        logits = self._model.decode(slots, tokens)  # type: ignore[arg-type]
        now = self._record(start, "decode", {r.id: 1 for r in requests})
        alone = requests[0].speculation if len(requests) == 1 else None
        if alone is not None:  # the one-row cost its draft length weighs against
            alone.timed(1, now - start)
        for request in requests:
            assert request.slot is not None and request.pending is not None
            self._cache.ran(request.slot, (request.pending,))
            request.pending, request.calls = None, request.calls + 1
            self._emit(request, logits[request.slot], now)

    def _verify(self, request: Request) -> bool:
        """One speculative step of the only running request: its pending token and drafts in
        one call on its slot, rows pushed until one differs from its draft, the rest cut from
        the slot. False when it does not speculate or the drafter offers nothing."""
        spec, slot, pending = request.speculation, request.slot, request.pending
        if spec is None or slot is None or pending is None:
            return False
        held = self._cache.held(slot)
        if len(held) != self._model.lengths[slot]:
            return False  # the ids it holds are not known: draft nothing
        output = request.output
        room = min(output.limit - len(output.token_ids) - 1, self.max_context - len(held) - 2)
        start = time.perf_counter()  # drafting counts: a draft model's calls cost too
        drafts = spec.draft([*held, pending], room)
        if not drafts:
            return False
        self._model.mark(slot)  # a hybrid row's states, for a partial accept
        rows = self._model.prefill_all(slot, [pending, *drafts])
        verified = time.perf_counter() - start
        self._cache.ran(slot, [pending, *drafts])
        request.pending, request.calls = None, request.calls + 1
        now, accepted, final = time.perf_counter(), 0, None
        for row, logits in enumerate(rows):
            event, final = output.push(logits, now - request.submitted, spec.proposal(row))
            request.deliver(event)
            hit = row < len(drafts) and event.token_id == drafts[row]
            accepted += hit
            if final is not None:
                break
            if not hit:
                request.pending = event.token_id
                break
        spec.accepted += accepted
        spec.adapt(len(drafts), accepted)
        keep = len(held) + 1 + accepted
        cut = time.perf_counter()
        if not self._model.truncate(slot, keep):  # a hybrid row: back to the mark, run again
            if not self._model.truncate(slot, len(held)):
                raise GenerationError("the slot could not cut rejected drafts from its cache")
            self._model.prefill(slot, [pending, *drafts[:accepted]])
            request.calls += 1
        spec.timed(len(rows), verified + time.perf_counter() - cut)
        self._cache.cut(slot, keep)
        self._record(start, "verify", {request.id: row + 1})
        if final is not None:
            with self._cond:
                self._finish(slot, request, final)
        return True

    def _emit(self, request: Request, logits: Any, now: float) -> None:
        event, final = request.output.push(logits, now - request.submitted)
        request.deliver(event)
        if final is not None:
            with self._cond:
                assert request.slot is not None
                self._finish(request.slot, request, final)
        else:
            request.pending = event.token_id

    def _finish(
        self, slot: int, request: Request, reason: Any, error: BaseException | None = None
    ) -> None:
        context = self._model.lengths[slot] + (request.pending is not None)
        self._active.pop(slot, None)
        self._cache.finished(slot, failed=error is not None)
        result = request.output.result(
            reason,
            prompt_tokens=len(request.prompt_ids),
            prefill_s=request.prefill_s,
            total_s=time.perf_counter() - request.submitted,
            context_tokens=context,
            kv_cache_bytes=self._model.nbytes,
            backend=self._model.device,
            cached_tokens=request.cached,
            drafted_tokens=0 if request.speculation is None else request.speculation.drafted,
            accepted_tokens=0 if request.speculation is None else request.speculation.accepted,
            model_calls=request.calls,
        )
        request.finish(result, error)
