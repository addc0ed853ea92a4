"""OpenAI response bodies and stream chunks, for chat and text completions.

A stream is ``opening()`` chunks, the ``pieces()`` of each piece of text, the ``held()``
chunks of what a reasoning split still held back, a ``final()`` chunk with the
``finish_reason``, and with ``stream_options.include_usage`` a ``usage_chunk()`` (empty
``choices``), as the OpenAI API sends them; the SSE framing is in :mod:`edge_sdk.serve.sse`.

A chat shape with a :class:`~edge_sdk.runtime.reasoning.ReasoningSplitter` splits a thinking
model's ``<think>`` block from its answer as vLLM and llama-server (``--reasoning-format
deepseek``) do: ``message.reasoning_content`` and ``delta.reasoning_content`` carry the
reasoning (null in a response without any), ``content`` the answer alone.

A chat shape with a :class:`~edge_sdk.runtime.ToolCallSplitter` (a request with tools) reads
the model's calls out of the answer: ``message.tool_calls`` (``content`` the text outside the
calls, null when there is none) and ``finish_reason: "tool_calls"``; in a stream each call is
two ``delta.tool_calls`` chunks once it is complete, as OpenAI streams them: the first with its
``index``, ``id``, ``type``, ``function.name`` and ``function.arguments: ""``, the second with
the arguments.

With logprobs asked for (a ``logprobs`` formatter from :mod:`edge_sdk.serve.openai_logprobs`),
:meth:`ResponseShape.token` attaches each token's logprobs to the next chunk that goes out (a
token whose text is held back, e.g. part of a character, rides on a later chunk, at the latest
the final one); a completion with ``echo`` sends its prompt's logprobs with the echoed text,
once the prompt has run (:meth:`ResponseShape.prefilled`).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from edge_sdk.runtime.logprobs import TokenLogprobs
from edge_sdk.runtime.reasoning import ReasoningDelta, ReasoningSplitter
from edge_sdk.runtime.sequence import TokenEvent
from edge_sdk.runtime.stats import StopReason
from edge_sdk.runtime.tool_calls import ToolCall, ToolCallSplitter, ToolDelta
from edge_sdk.serve.openai_logprobs import ChatLogprobs, CompletionLogprobs

__all__ = ["ChatShape", "CompletionShape", "ResponseShape", "finish_reason", "usage"]

_FINISH: dict[str, str] = {
    "eos": "stop",
    "stop": "stop",
    "max_new_tokens": "length",
    "length": "length",
}


def finish_reason(stop_reason: StopReason) -> str | None:
    """OpenAI's ``finish_reason`` for an engine stop reason (None for ``"cancelled"``)."""
    return _FINISH.get(stop_reason)


def usage(
    prompt_tokens: int,
    completion_tokens: int,
    energy: dict[str, Any] | None = None,
    cached_tokens: int = 0,
) -> dict[str, Any]:
    """The ``usage`` object; ``cached_tokens``: prompt tokens reused from the prefix cache;
    ``energy`` (joules, tokens_per_joule, sensor) when measured."""
    body: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached_tokens},
    }
    if energy is not None:
        body["energy"] = energy
    return body


class ResponseShape:
    """What one endpoint's bodies look like; one instance per request (its id and time)."""

    object_name = ""
    chunk_object = ""
    id_prefix = ""

    def __init__(
        self,
        model: str,
        include_usage: bool = False,
        logprobs: ChatLogprobs | CompletionLogprobs | None = None,
    ) -> None:
        self.id = self.id_prefix + uuid.uuid4().hex
        self.created = int(time.time())
        self.model = model
        self.include_usage = include_usage
        self.logprobs = logprobs
        self._unsent: list[TokenLogprobs] = []  # tokens whose logprobs no chunk carried yet

    def _logprobs_body(self, entries: list[TokenLogprobs] | None) -> dict[str, Any] | None:
        if self.logprobs is None or entries is None:
            return None
        return self.logprobs.body(entries)

    def _attach(self, chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Put the unsent tokens' logprobs on the first of ``chunks``."""
        if chunks and self._unsent:
            chunks[0]["choices"][0]["logprobs"] = self._logprobs_body(self._unsent)
            self._unsent = []
        return chunks

    def token(self, event: TokenEvent) -> list[dict[str, Any]]:
        """The chunks for one generated token (its text's :meth:`pieces`, and its logprobs)."""
        if self.logprobs is None:
            return self.pieces(event.text)
        self._unsent.append(TokenLogprobs(event.token_id, event.logprob, event.top_logprobs))
        return self._attach(self.pieces(event.text))

    def prefilled(self, prompt_logprobs: list[TokenLogprobs] | None) -> list[dict[str, Any]]:
        """The chunks to send once the prompt has run (none unless a shape waits for it)."""
        return []

    def _envelope(self, object_name: str, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": object_name,
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }

    def _chunk(self, choice: dict[str, Any]) -> dict[str, Any]:
        chunk = self._envelope(self.chunk_object, [{"index": 0, **choice}])
        if self.include_usage:
            chunk["usage"] = None
        return chunk

    def usage_chunk(self, usage_body: dict[str, Any]) -> dict[str, Any]:
        return {**self._envelope(self.chunk_object, []), "usage": usage_body}

    def opening(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def text(self, piece: str) -> dict[str, Any]:
        raise NotImplementedError

    def pieces(self, piece: str) -> list[dict[str, Any]]:
        """The chunks for one piece of generated text (none for an empty piece)."""
        return [self.text(piece)] if piece else []

    def held(self) -> list[dict[str, Any]]:
        """The chunks of text held back until the end (none unless a split holds some)."""
        return []

    def final(self, finish: str) -> dict[str, Any]:
        raise NotImplementedError

    def response(
        self,
        text: str,
        finish: str,
        usage_body: dict[str, Any],
        logprobs: list[TokenLogprobs] | None = None,
        prompt_logprobs: list[TokenLogprobs] | None = None,
    ) -> dict[str, Any]:
        """The whole answer; ``logprobs`` (and with ``echo``, ``prompt_logprobs``) when asked."""
        raise NotImplementedError


class ChatShape(ResponseShape):
    """``/v1/chat/completions``: ``chat.completion`` and ``chat.completion.chunk``.

    ``reasoning``: split the reply into ``reasoning_content`` and ``content`` (module
    docstring); ``include_reasoning=False`` (vLLM's field) drops the reasoning instead.
    """

    object_name = "chat.completion"
    chunk_object = "chat.completion.chunk"
    id_prefix = "chatcmpl-"

    def __init__(
        self,
        model: str,
        include_usage: bool = False,
        reasoning: ReasoningSplitter | None = None,
        include_reasoning: bool = True,
        tools: ToolCallSplitter | None = None,
        logprobs: ChatLogprobs | None = None,
    ) -> None:
        super().__init__(model, include_usage, logprobs)
        self.reasoning = reasoning
        self.include_reasoning = include_reasoning
        self.tools = tools

    def pieces(self, piece: str) -> list[dict[str, Any]]:
        if self.reasoning is None and self.tools is None:
            return super().pieces(piece)
        split = (
            ReasoningDelta(content=piece) if self.reasoning is None else self.reasoning.push(piece)
        )
        calls = ToolDelta(split.content) if self.tools is None else self.tools.push(split.content)
        return self._split_chunks(split, calls)

    def held(self) -> list[dict[str, Any]]:
        split = ReasoningDelta() if self.reasoning is None else self.reasoning.flush()
        if self.tools is None:
            return self._attach(self._split_chunks(split, ToolDelta(split.content)))
        pushed, end = self.tools.push(split.content), self.tools.flush()
        calls = ToolDelta(pushed.content + end.content, pushed.calls + end.calls)
        return self._attach(self._split_chunks(split, calls))

    def _split_chunks(self, split: ReasoningDelta, calls: ToolDelta) -> list[dict[str, Any]]:
        delta: dict[str, str] = {}
        if split.reasoning and self.include_reasoning:
            delta["reasoning_content"] = split.reasoning
        if calls.content:
            delta["content"] = calls.content
        chunks = [delta] if delta else []
        first = len(self.tools.calls) - len(calls.calls) if self.tools is not None else 0
        for index, call in enumerate(calls.calls, first):
            chunks += _call_deltas(index, call)
        return [self._chunk({"delta": d, "logprobs": None, "finish_reason": None}) for d in chunks]

    def opening(self) -> list[dict[str, Any]]:
        return [
            self._chunk(
                {
                    "delta": {"role": "assistant", "content": ""},
                    "logprobs": None,
                    "finish_reason": None,
                }
            )
        ]

    def text(self, piece: str) -> dict[str, Any]:
        return self._chunk({"delta": {"content": piece}, "logprobs": None, "finish_reason": None})

    def final(self, finish: str) -> dict[str, Any]:
        chunk = self._chunk({"delta": {}, "logprobs": None, "finish_reason": self._finish(finish)})
        return self._attach([chunk])[0]

    def _finish(self, finish: str) -> str:
        """``tool_calls`` when the model ended its turn with calls."""
        return "tool_calls" if finish == "stop" and self.tools and self.tools.calls else finish

    def response(
        self,
        text: str,
        finish: str,
        usage_body: dict[str, Any],
        logprobs: list[TokenLogprobs] | None = None,
        prompt_logprobs: list[TokenLogprobs] | None = None,
    ) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if self.reasoning is not None:
            self.reasoning.push(text)
            self.reasoning.flush()
            message["content"] = self.reasoning.content
            if self.include_reasoning:
                message["reasoning_content"] = self.reasoning.reasoning or None
        if self.tools is not None:
            self.tools.push(message["content"])
            self.tools.flush()
            message["content"] = self.tools.content
            if self.tools.calls:
                message["content"] = self.tools.content or None
                message["tool_calls"] = [_call_body(c) for c in self.tools.calls]
        choice = {
            "index": 0,
            "message": message,
            "logprobs": self._logprobs_body(logprobs),
            "finish_reason": self._finish(finish),
        }
        return {**self._envelope(self.object_name, [choice]), "usage": usage_body}


def _call_body(call: ToolCall) -> dict[str, Any]:
    function = {"name": call.name, "arguments": call.arguments}
    return {"id": call.id, "type": "function", "function": function}


def _call_deltas(index: int, call: ToolCall) -> list[dict[str, Any]]:
    """A completed call as OpenAI streams one: its head (arguments ""), then its arguments."""
    head = {"index": index, **_call_body(call)}
    head["function"] = {"name": call.name, "arguments": ""}
    return [
        {"tool_calls": [head]},
        {"tool_calls": [{"index": index, "function": {"arguments": call.arguments}}]},
    ]


class CompletionShape(ResponseShape):
    """``/v1/completions``: ``text_completion`` bodies and chunks (``echo`` prepends the
    prompt's text)."""

    object_name = "text_completion"
    chunk_object = "text_completion"
    id_prefix = "cmpl-"

    def __init__(
        self,
        model: str,
        include_usage: bool = False,
        echo: str = "",
        logprobs: CompletionLogprobs | None = None,
    ) -> None:
        super().__init__(model, include_usage, logprobs)
        self.echo = echo

    def opening(self) -> list[dict[str, Any]]:
        if self.echo and self.logprobs is not None:
            return []  # sent with the prompt's logprobs once it has run: prefilled()
        return [self.text(self.echo)] if self.echo else []

    def prefilled(self, prompt_logprobs: list[TokenLogprobs] | None) -> list[dict[str, Any]]:
        if not (self.echo and self.logprobs is not None):
            return []
        chunk = self.text(self.echo)
        chunk["choices"][0]["logprobs"] = self._logprobs_body(prompt_logprobs or [])
        return [chunk]

    def text(self, piece: str) -> dict[str, Any]:
        return self._chunk({"text": piece, "logprobs": None, "finish_reason": None})

    def final(self, finish: str) -> dict[str, Any]:
        chunk = self._chunk({"text": "", "logprobs": None, "finish_reason": finish})
        return self._attach([chunk])[0]

    def response(
        self,
        text: str,
        finish: str,
        usage_body: dict[str, Any],
        logprobs: list[TokenLogprobs] | None = None,
        prompt_logprobs: list[TokenLogprobs] | None = None,
    ) -> dict[str, Any]:
        entries = None
        if logprobs is not None:
            entries = ((prompt_logprobs or []) if self.echo else []) + logprobs
        choice = {
            "index": 0,
            "text": self.echo + text,
            "logprobs": self._logprobs_body(entries),
            "finish_reason": finish,
        }
        return {**self._envelope(self.object_name, [choice]), "usage": usage_body}
