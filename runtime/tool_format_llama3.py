"""Llama 3.x JSON tool calls (Llama 3.1, 3.2, 3.3 with their own templates).

A reply that calls a tool is only the call: ``{"name": "f", "parameters": {...}}`` (Meta's
format; ``"arguments"`` is read too), optionally after ``<|python_tag|>``; several calls are
separated by ``;`` (as vLLM's ``llama3_json`` parser reads them). So a reply is held back
whole when it starts with ``{`` or ``<|python_tag|>`` and read at its end: calls if it is only
calls, otherwise content as written (a JSON answer that is not a call stays an answer).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from edge_sdk.runtime.tool_calls import (
    ToolCall,
    ToolCallSplitter,
    ToolDelta,
    ToolFormat,
    ToolFunction,
    read_call,
)

__all__ = ["PYTHON_TAG", "Llama3Format", "Llama3Splitter", "read_calls"]

PYTHON_TAG = "<|python_tag|>"
_ARGUMENT_KEYS = ("parameters", "arguments")


def read_calls(text: str) -> list[ToolCall] | str:
    """Calls from ``{...}; {...}`` (the whole text), or why it is not only calls."""
    decoder = json.JSONDecoder()
    body = text.strip()
    body = body[len(PYTHON_TAG) :].lstrip() if body.startswith(PYTHON_TAG) else body
    calls: list[ToolCall] = []
    position = 0
    while position < len(body):
        try:
            value, position = decoder.raw_decode(body, position)
        except ValueError as exc:
            return f"not JSON ({exc})"
        call = read_call(value, _ARGUMENT_KEYS) if isinstance(value, dict) else "not an object"
        if not isinstance(call, ToolCall):
            return call
        calls.append(call)
        rest = body[position:].lstrip()
        if rest.startswith(";"):
            rest = rest[1:].lstrip()
        position = len(body) - len(rest)
    return calls or "no call"


class Llama3Splitter(ToolCallSplitter):
    """Holds a reply that may be a call until its end; streams any other reply as it comes."""

    def __init__(self, max_calls: int | None = None) -> None:
        super().__init__(max_calls)
        self._state = "start"  # start -> held (may be a call) | content

    def push(self, text: str) -> ToolDelta:
        self._held += text
        if self._state == "start":
            body = self._held.lstrip()
            if body.startswith(("{", PYTHON_TAG)):
                self._state = "held"
            elif body and not PYTHON_TAG.startswith(body):
                self._state = "content"
                self._held = body
        if self._state != "content":
            return self._delta("")
        held, self._held = self._held, ""
        return self._delta(held)

    def flush(self) -> ToolDelta:
        held, self._held = self._held, ""
        if self._state == "held":
            self._state = "content"
            calls = read_calls(held)
            if not isinstance(calls, str):
                return self._delta("", calls)
            if held.lstrip().startswith(PYTHON_TAG) or '"name"' in held:
                held = self._unreadable(held, calls)
        self._state = "content"
        return self._delta(held.strip() if not self.content else held.rstrip())


class Llama3Format(ToolFormat):
    name = "llama3"

    def splitter(self, max_calls: int | None = None) -> Llama3Splitter:
        return Llama3Splitter(max_calls)

    def grammar(self, functions: Sequence[ToolFunction], parallel: bool) -> str:
        start = 'start: call_object ("; " call_object)*' if parallel else "start: call_object"
        return "\n".join([start, self._alternatives(functions, "parameters")])
