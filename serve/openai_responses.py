"""OpenAI response bodies and stream chunks, for chat and text completions.

A stream is ``opening()`` chunks, the ``pieces()`` of each piece of text, the ``held()``
chunks of what a reasoning split still held back, a ``final()`` chunk with the
``finish_reason``, and with ``stream_options.include_usage`` a ``usage_chunk()`` (empty
``choices``), as the OpenAI API sends them; the SSE framing is in :mod:`edge_sdk.serve.sse`.

A chat shape with a :class:`~edge_sdk.runtime.reasoning.ReasoningSplitter` splits a thinking
model's ``<think>`` block from its answer as vLLM and llama-server (``--reasoning-format
deepseek``) do: ``message.reasoning_content`` and ``delta.reasoning_content`` carry the
reasoning (null in a response without any), ``content`` the answer alone.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from edge_sdk.runtime.reasoning import ReasoningDelta, ReasoningSplitter
from edge_sdk.runtime.stats import StopReason

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

    def __init__(self, model: str, include_usage: bool = False) -> None:
        self.id = self.id_prefix + uuid.uuid4().hex
        self.created = int(time.time())
        self.model = model
        self.include_usage = include_usage

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

    def response(self, text: str, finish: str, usage_body: dict[str, Any]) -> dict[str, Any]:
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
    ) -> None:
        super().__init__(model, include_usage)
        self.reasoning = reasoning
        self.include_reasoning = include_reasoning

    def pieces(self, piece: str) -> list[dict[str, Any]]:
        if self.reasoning is None:
            return super().pieces(piece)
        return self._split_chunks(self.reasoning.push(piece))

    def held(self) -> list[dict[str, Any]]:
        return [] if self.reasoning is None else self._split_chunks(self.reasoning.flush())

    def _split_chunks(self, split: ReasoningDelta) -> list[dict[str, Any]]:
        delta: dict[str, str] = {}
        if split.reasoning and self.include_reasoning:
            delta["reasoning_content"] = split.reasoning
        if split.content:
            delta["content"] = split.content
        if not delta:
            return []
        return [self._chunk({"delta": delta, "logprobs": None, "finish_reason": None})]

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
        return self._chunk({"delta": {}, "logprobs": None, "finish_reason": finish})

    def response(self, text: str, finish: str, usage_body: dict[str, Any]) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if self.reasoning is not None:
            self.reasoning.push(text)
            self.reasoning.flush()
            message["content"] = self.reasoning.content
            if self.include_reasoning:
                message["reasoning_content"] = self.reasoning.reasoning or None
        choice = {
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": finish,
        }
        return {**self._envelope(self.object_name, [choice]), "usage": usage_body}


class CompletionShape(ResponseShape):
    """``/v1/completions``: ``text_completion`` bodies and chunks (``echo`` prepends the
    prompt's text)."""

    object_name = "text_completion"
    chunk_object = "text_completion"
    id_prefix = "cmpl-"

    def __init__(self, model: str, include_usage: bool = False, echo: str = "") -> None:
        super().__init__(model, include_usage)
        self.echo = echo

    def opening(self) -> list[dict[str, Any]]:
        return [self.text(self.echo)] if self.echo else []

    def text(self, piece: str) -> dict[str, Any]:
        return self._chunk({"text": piece, "logprobs": None, "finish_reason": None})

    def final(self, finish: str) -> dict[str, Any]:
        return self._chunk({"text": "", "logprobs": None, "finish_reason": finish})

    def response(self, text: str, finish: str, usage_body: dict[str, Any]) -> dict[str, Any]:
        choice = {"index": 0, "text": self.echo + text, "logprobs": None, "finish_reason": finish}
        return {**self._envelope(self.object_name, [choice]), "usage": usage_body}
