"""One engine request seen from the event loop: submit, events, result, cancel, metrics.

The engine calls ``on_event`` on its own thread; the event goes into the loop's inbox and
nothing else happens on the engine thread. The inbox wakes the event loop once per batch (all
the events of one decode step, for every request in it), not once per token. On the loop,
tokens update the metrics and (for a stream) go to a queue; the result settles the request's
energy and metrics, even when its client has gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import Sequence
from typing import Any, TypeAlias

from edge_sdk.errors import GenerationError
from edge_sdk.runtime.engine import EngineClosedError, QueueFullError, Request
from edge_sdk.runtime.generator import GenerationResult, TokenEvent
from edge_sdk.runtime.logprobs import TokenLogprobs
from edge_sdk.runtime.options import GenerationOptions
from edge_sdk.serve.errors import APIError
from edge_sdk.serve.openai_responses import finish_reason
from edge_sdk.serve.state import ServerState

__all__ = ["EngineCall"]

Event: TypeAlias = TokenEvent | GenerationResult


class _Inbox:
    """Events from the engine's thread, handed to one event loop in batches."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._items: list[tuple[EngineCall, Event]] = []
        self._scheduled = False

    def put(self, call: EngineCall, event: Event) -> None:
        with self._lock:
            self._items.append((call, event))
            if self._scheduled:
                return
            self._scheduled = True
        with contextlib.suppress(RuntimeError):  # the loop is closed: the server has stopped
            self._loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        with self._lock:
            items, self._items, self._scheduled = self._items, [], False
        for call, event in items:
            call._deliver(event)


_INBOXES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Inbox] = weakref.WeakKeyDictionary()


def _inbox(loop: asyncio.AbstractEventLoop) -> _Inbox:
    inbox = _INBOXES.get(loop)
    if inbox is None:
        inbox = _INBOXES[loop] = _Inbox(loop)
    return inbox


class EngineCall:
    """Submit one request to the state's engine and follow it from the event loop.

    ``stream``: keep its token events for :meth:`next_event` (else only the result is kept).
    """

    def __init__(self, state: ServerState, endpoint: str, stream: bool) -> None:
        self._state = state
        self._endpoint = endpoint
        self._stream = stream
        self._loop = asyncio.get_running_loop()
        self._inbox = _inbox(self._loop)
        self._events: asyncio.Queue[Event] = asyncio.Queue()
        self.result: asyncio.Future[GenerationResult] = self._loop.create_future()
        self.request: Request | None = None
        self.energy: dict[str, Any] | None = None
        self.error: BaseException | None = None  # the model failed under the request
        self._submitted = 0.0
        self._last_token: float | None = None

    def submit(self, prompt_ids: Sequence[int], options: GenerationOptions) -> None:
        """Queue the request; engine refusals become OpenAI errors (429, 503, 400)."""
        engine = self._state.ready_engine()
        retry = {"Retry-After": str(self._state.settings.retry_after_s)}
        try:
            request = engine.submit(list(prompt_ids), on_event=self._from_engine, options=options)
        except QueueFullError as exc:
            raise APIError(
                429, f"the server is busy: {exc}", code="queue_full", headers=retry
            ) from exc
        except EngineClosedError as exc:
            raise APIError(
                503,
                "the server is shutting down and admits no new requests; "
                "retry later or on another server",
                code="draining",
                headers=retry,
            ) from exc
        except GenerationError as exc:
            raise APIError(400, str(exc), code="invalid_value") from exc
        self._submitted = self._loop.time()
        self.request = request
        self._state.requests.add(request)

    @property
    def prompt_logprobs(self) -> list[TokenLogprobs] | None:
        """The prompt's logprobs (the ``prompt_logprobs`` option), complete once the first event
        has arrived; None without the option."""
        return None if self.request is None else self.request.prompt_logprobs

    def cancel(self) -> None:
        """Stop the request (its slot is freed before the engine's next step)."""
        if self.request is not None and not self.result.done():
            self.request.cancel()

    async def next_event(self) -> Event:
        """The next token event, or the result last (streams only)."""
        return await self._events.get()

    def pending_events(self) -> list[Event]:
        """Events already queued, without waiting."""
        out = []
        while not self._events.empty():
            out.append(self._events.get_nowait())
        return out

    # -- engine thread -> loop --------------------------------------------------------------------
    def _from_engine(self, event: Event) -> None:
        self._inbox.put(self, event)

    def _deliver(self, event: Event) -> None:
        metrics = self._state.metrics
        if isinstance(event, TokenEvent):
            if self._last_token is None:
                if self.request is not None:
                    metrics.prompt_tokens.inc(len(self.request.prompt_ids))
                    metrics.prompt_tokens_cached.inc(self.request.cached)
            else:
                metrics.tpot.observe(max(event.time - self._last_token, 0.0))
            self._last_token = event.time
            metrics.generation_tokens.inc()
            if self._stream:
                self._events.put_nowait(event)
            return
        self._finish(event)
        if self._stream:
            self._events.put_nowait(event)
        if not self.result.done():
            self.result.set_result(event)

    def _finish(self, result: GenerationResult) -> None:
        state, metrics = self._state, self._state.metrics
        if self.request is not None:
            self.error = self.request.error
            state.requests.discard(self.request)
            if state.energy is not None:
                joules = state.energy.take(self.request.id, result.stats.new_tokens)
                self.energy = state.energy.usage(joules, result.stats.new_tokens)
        reason = (
            "error"
            if self.error is not None
            else finish_reason(result.stop_reason) or result.stop_reason
        )
        metrics.finished.labels(self._endpoint, reason).inc()
        metrics.drafted_tokens.inc(result.stats.drafted_tokens)
        metrics.accepted_tokens.inc(result.stats.accepted_tokens)
        if result.stats.new_tokens:
            metrics.ttft.observe(result.stats.time_to_first_token_s)
        metrics.e2e.observe(self._loop.time() - self._submitted)
