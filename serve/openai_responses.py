"""OpenAI response bodies and stream chunks, for chat and text completions.

A stream is ``opening()`` chunks, one ``text()`` chunk per non-empty piece of text, a
``final()`` chunk with the ``finish_reason``, and with ``stream_options.include_usage`` a
``usage_chunk()`` (empty ``choices``), as the OpenAI API sends them; the SSE framing is in
:mod:`edge_sdk.serve.sse`.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

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
    prompt_tokens: int, completion_tokens: int, energy: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The ``usage`` object; ``energy`` (joules, tokens_per_joule, sensor) when measured."""
    body: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
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

    def final(self, finish: str) -> dict[str, Any]:
        raise NotImplementedError

    def response(self, text: str, finish: str, usage_body: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError


class ChatShape(ResponseShape):
    """``/v1/chat/completions``: ``chat.completion`` and ``chat.completion.chunk``."""

    object_name = "chat.completion"
    chunk_object = "chat.completion.chunk"
    id_prefix = "chatcmpl-"

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
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
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
