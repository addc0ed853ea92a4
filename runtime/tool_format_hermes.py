"""Hermes-style tool calls (Hermes 2 Pro, Qwen2.5, Qwen3, edge-sdk's ``chatml-tools``).

Each call is ``<tool_call>\\n{"name": "f", "arguments": {...}}\\n</tool_call>``, anywhere in
the reply, several in a row for parallel calls. A call the model did not close before the end
is read if its JSON is complete.
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

__all__ = ["CALL_END", "CALL_START", "HermesFormat", "HermesSplitter"]

CALL_START = "<tool_call>"
CALL_END = "</tool_call>"
_ARGUMENT_KEYS = ("arguments", "parameters")


def _undecided_tail(text: str) -> int:
    """Length of the end of ``text`` that may still start a call: a prefix of
    :data:`CALL_START` and the whitespace before it (dropped if a call follows)."""
    tag = next(
        (
            n
            for n in range(min(len(CALL_START) - 1, len(text)), 0, -1)
            if text.endswith(CALL_START[:n])
        ),
        0,
    )
    rest = text[: len(text) - tag]
    return tag + len(rest) - len(rest.rstrip())


class HermesSplitter(ToolCallSplitter):
    """Content until ``<tool_call>``, the call when ``</tool_call>`` closes it, and so on."""

    def __init__(self, max_calls: int | None = None) -> None:
        super().__init__(max_calls)
        self._in_call = False
        self._lead = True  # drop whitespace: the reply's start, or just after a call
        self._gap = ""  # whitespace dropped before the open call (given back if unreadable)

    def push(self, text: str) -> ToolDelta:
        self._held += text
        content: list[str] = []
        calls: list[ToolCall] = []
        while self._step(content, calls):
            pass
        return self._delta("".join(content), calls)

    def flush(self) -> ToolDelta:
        held, self._held = self._held, ""
        if not self._in_call:
            return self._delta("" if self._lead else held.rstrip())
        self._in_call = False
        call = read_call(held.strip(), _ARGUMENT_KEYS)
        if isinstance(call, ToolCall):
            return self._delta("", [call])
        return self._delta(self._unreadable(self._gap + CALL_START + held, call))

    def _step(self, content: list[str], calls: list[ToolCall]) -> bool:
        """Move what can be decided from the held text; whether to look again."""
        held = self._held
        if self._in_call:
            end = held.find(CALL_END)
            if end < 0:
                return False
            block, self._held, self._in_call = held[:end], held[end + len(CALL_END) :], False
            call = read_call(block.strip(), _ARGUMENT_KEYS)
            if isinstance(call, ToolCall):
                calls.append(call)
                self._lead = True
            else:
                content.append(self._unreadable(self._gap + CALL_START + block + CALL_END, call))
            return True
        if self._lead:
            self._held = held = held.lstrip()
            if not held:
                return False
            self._lead = False
        start = held.find(CALL_START)
        if start >= 0:
            before = held[:start]
            content.append(before.rstrip())
            self._gap = before[len(before.rstrip()) :]
            self._held, self._in_call = held[start + len(CALL_START) :], True
            return True
        keep = _undecided_tail(held)
        content.append(held[: len(held) - keep])
        self._held = held[len(held) - keep :]
        return False


class HermesFormat(ToolFormat):
    name = "hermes"

    def splitter(self, max_calls: int | None = None) -> HermesSplitter:
        return HermesSplitter(max_calls)

    def grammar(self, functions: Sequence[ToolFunction], parallel: bool) -> str:
        open_, close = json.dumps(CALL_START + "\n"), json.dumps("\n" + CALL_END)
        start = 'start: call ("\\n" call)*' if parallel else "start: call"
        return "\n".join(
            [
                start,
                f"call: {open_} call_object {close}",
                self._alternatives(functions, "arguments"),
            ]
        )
