"""One request of the engine (:mod:`edge_sdk.runtime.engine`): its state and how it reports."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

from edge_sdk.errors import EdgeError, GenerationError
from edge_sdk.runtime.logprobs import TokenLogprobs
from edge_sdk.runtime.sequence import GenerationResult, SequenceOutput, TokenEvent
from edge_sdk.runtime.speculative import Speculation

__all__ = ["EngineClosedError", "QueueFullError", "Request"]

_log = logging.getLogger("edge_sdk.runtime.engine")


class QueueFullError(GenerationError):
    """Every slot is busy and the queue is full: try again later."""


class EngineClosedError(GenerationError):
    """The engine is shutting down and takes no new requests."""


class Request:
    """A submitted generation: iterate it for :class:`TokenEvent` s (from any thread), or
    :meth:`wait` for the :class:`GenerationResult`; :meth:`cancel` stops it."""

    def __init__(
        self,
        request_id: int,
        prompt_ids: list[int],
        output: SequenceOutput,
        submitted: float,
        on_event: Callable[[Any], None] | None,
        wake: Callable[[], None],
        cache_prompt: bool = True,
    ) -> None:
        self.id = request_id
        self.prompt_ids = prompt_ids
        self.result: GenerationResult | None = None
        self.error: BaseException | None = None  # set when the model failed under it
        self.submitted = submitted
        # the engine's bookkeeping (its thread only)
        self.output = output
        self.slot: int | None = None
        self.admitted = 0.0
        self.prefilled = 0  # prompt tokens already in the slot (reused or run)
        self.cache_prompt = cache_prompt  # may reuse what its slot holds
        self.cached = 0  # prompt tokens reused from what the slot held
        self.prefill_s = 0.0
        self.pending: int | None = None  # sampled, not yet run through the model
        self.speculation: Speculation | None = None  # drafts while it runs alone (the engine)
        self.calls = 0  # model calls that produced its output tokens
        self._on_event = on_event
        self._events: queue.SimpleQueue[Any] | None = None if on_event else queue.SimpleQueue()
        self._cancelled = threading.Event()
        self._done = threading.Event()
        self._wake = wake

    @property
    def prompt_logprobs(self) -> list[TokenLogprobs] | None:
        """The prompt's logprobs (the ``prompt_logprobs`` option; None without it): complete
        once the first token event (or the result) has been delivered."""
        scorer = self.output.prompt_scorer
        return None if scorer is None else scorer.entries

    @property
    def done(self) -> bool:
        """Whether the request has ended (its result is set)."""
        return self._done.is_set()

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called."""
        return self._cancelled.is_set()

    def cancel(self) -> None:
        """Stop the request (safe from any thread): its slot is free before the next decode
        step; it ends with stop reason ``"cancelled"``."""
        self.cancel_quietly()
        self._wake()

    def cancel_quietly(self) -> None:
        """Mark the request cancelled without waking the engine (the engine's own use)."""
        self._cancelled.set()

    def __iter__(self) -> Iterator[TokenEvent]:
        if self._events is None:
            raise GenerationError("this request reports through its on_event callback")
        while True:
            item = self._events.get()
            if isinstance(item, GenerationResult):
                self._raise_error()
                return
            yield item

    def wait(self, timeout: float | None = None) -> GenerationResult:
        """Block until the request ends; its result. Raises TimeoutError after ``timeout`` s."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"request {self.id} did not finish in {timeout} s")
        self._raise_error()
        assert self.result is not None
        return self.result

    def _raise_error(self) -> None:
        if self.error is not None:
            if isinstance(self.error, EdgeError):
                raise self.error
            raise GenerationError(f"the model failed: {self.error}") from self.error

    # -- the engine's side ----------------------------------------------------------------------

    def deliver(self, item: TokenEvent | GenerationResult) -> None:
        """Hand an event (or the final result) to the caller."""
        if self._events is not None:
            self._events.put(item)
            return
        assert self._on_event is not None
        try:
            self._on_event(item)
        except Exception:  # noqa: BLE001 - the caller's callback must not stop the engine
            _log.exception("request %d: on_event failed; cancelling the request", self.id)
            self._cancelled.set()

    def finish(self, result: GenerationResult, error: BaseException | None = None) -> None:
        """Record the end and tell the caller."""
        self.result, self.error = result, error
        self._done.set()
        self.deliver(result)
