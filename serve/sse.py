"""A request's chunks as server-sent events, with the client's disconnect cancelling it.

``data: {json}\\n\\n`` per chunk and ``data: [DONE]\\n\\n`` last, as the OpenAI API streams. The
response listens for the ASGI ``http.disconnect`` message while it streams: a client that goes
away cancels its engine request at once, so its slot is free before the engine's next step.
An error after the stream began (the server cancelled the request while draining, or a bug) is
sent as an OpenAI error event, then ``[DONE]``: the connection always ends.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from starlette.types import Message, Receive, Scope, Send

from edge_sdk.runtime.generator import GenerationResult
from edge_sdk.serve.bridge import EngineCall
from edge_sdk.serve.errors import error_body
from edge_sdk.serve.openai_responses import ResponseShape, finish_reason, usage

__all__ = ["EventStream", "sse"]

LOG = logging.getLogger("edge_sdk.serve")
DONE = b"data: [DONE]\n\n"


def sse(data: dict[str, Any]) -> bytes:
    """One server-sent event carrying ``data`` as compact JSON."""
    return (
        b"data: " + json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n"
    )


async def wait_disconnect(receive: Receive) -> None:
    """Return when the client has gone (the request body must already be read)."""
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            return


class EventStream:
    """The ASGI response for ``stream: true``."""

    def __init__(self, call: EngineCall, shape: ResponseShape, prompt_tokens: int) -> None:
        self.call = call
        self.shape = shape
        self.prompt_tokens = prompt_tokens
        self.disconnected = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream; charset=utf-8"),
                    (b"cache-control", b"no-cache"),
                    (b"x-accel-buffering", b"no"),
                ],
            }
        )
        watcher = asyncio.ensure_future(self._watch(receive))
        try:
            await self._pump(send)
        except OSError:  # the connection broke under a write
            self.disconnected = True
        except Exception as exc:  # the headers are out: end with an error event, never hang
            LOG.exception("stream failed")
            await self._send(
                send,
                sse(
                    error_body(
                        500,
                        f"the server hit an unexpected error ({type(exc).__name__})",
                        None,
                        "internal_error",
                    )
                )
                + DONE,
            )
        finally:
            watcher.cancel()
            self.call.cancel()  # no-op when it finished
        if not self.disconnected:
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _watch(self, receive: Receive) -> None:
        await wait_disconnect(receive)
        self.disconnected = True
        self.call.cancel()

    async def _send(self, send: Send, body: bytes) -> None:
        if body and not self.disconnected:
            await send({"type": "http.response.body", "body": body, "more_body": True})

    async def _pump(self, send: Send) -> None:
        shape = self.shape
        await self._send(send, b"".join(sse(c) for c in shape.opening()))
        result: GenerationResult | None = None
        prefilled = False
        while result is None:
            events = [await self.call.next_event(), *self.call.pending_events()]
            pieces = []
            if not prefilled:  # the prompt has run: its logprobs are complete
                prefilled = True
                pieces += [sse(c) for c in shape.prefilled(self.call.prompt_logprobs)]
            for event in events:
                if isinstance(event, GenerationResult):
                    result = event
                    pieces += [sse(c) for c in shape.held()]
                else:
                    pieces += [sse(c) for c in shape.token(event)]
            if pieces:  # tokens that arrived together go out in one write
                await self._send(send, b"".join(pieces))
        finish = finish_reason(result.stop_reason)
        if self.call.error is not None:
            await self._send(
                send,
                sse(
                    error_body(
                        500,
                        "the model failed while generating (logged on the server: "
                        f"{type(self.call.error).__name__})",
                        None,
                        "model_error",
                    )
                )
                + DONE,
            )
            return
        if finish is None:  # cancelled: by the client (nobody to tell) or by the drain timeout
            await self._send(
                send,
                sse(
                    error_body(
                        503, "the server shut down before the request finished", None, "cancelled"
                    )
                )
                + DONE,
            )
            return
        tail = [sse(shape.final(finish))]
        if shape.include_usage:
            tail.append(
                sse(
                    shape.usage_chunk(
                        usage(
                            self.prompt_tokens,
                            result.stats.new_tokens,
                            self.call.energy,
                            result.stats.cached_tokens,
                        )
                    )
                )
            )
        await self._send(send, b"".join(tail) + DONE)
