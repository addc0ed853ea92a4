"""Tool calls: the model's call text read back into calls, and the grammar that forces one.

A model trained for tools writes its calls in its template's format: Hermes / Qwen2.5 / Qwen3
(and edge-sdk's ``chatml-tools`` template) ``<tool_call>\\n{"name": ..., "arguments": {...}}\\n
</tool_call>`` anywhere in the reply (:mod:`~edge_sdk.runtime.tool_format_hermes`), Llama 3.x a
reply that is one JSON object ``{"name": ..., "parameters": {...}}``, optionally after
``<|python_tag|>`` (:mod:`~edge_sdk.runtime.tool_format_llama3`). :func:`tool_format_for`
picks the format from the template's text.

A :class:`ToolCallSplitter` takes the reply as it streams, in text deltas of any size, and
returns :class:`ToolDelta` s: text outside calls as ``content`` (text that may be the start of a
call is held back until it is decided) and each call once it is complete. Call text that cannot
be read (not JSON, no name) is returned as content, never an error, and logged in one line.
Whitespace around calls and at both ends of the reply is dropped. :func:`parse_tool_calls`
splits a whole reply the same way.

With ``tool_choice`` "required" or a named function, :meth:`ToolFormat.grammar` gives the
llguidance Lark grammar of the format's call(s) with the arguments constrained to the
function's JSON schema, for :meth:`~edge_sdk.runtime.ResponseFormat.grammar`.
"""

from __future__ import annotations

import json
import logging
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from edge_sdk.chat_template import ChatTemplate

__all__ = [
    "ToolCall",
    "ToolCallSplitter",
    "ToolDelta",
    "ToolFormat",
    "ToolFunction",
    "parse_tool_calls",
    "read_call",
    "tool_format_for",
]

LOG = logging.getLogger("edge_sdk.runtime")


def new_call_id() -> str:
    """A call id as OpenAI's look: ``call_`` and 24 random characters."""
    return "call_" + uuid.uuid4().hex[:24]


@dataclass(frozen=True)
class ToolCall:
    """One call: the function's ``name`` and its ``arguments`` as JSON text (an object)."""

    name: str
    arguments: str
    id: str = field(default_factory=new_call_id)


@dataclass(frozen=True)
class ToolFunction:
    """A function the model may call: ``parameters`` is its arguments' JSON schema."""

    name: str
    description: str | None = None
    parameters: Mapping[str, Any] | None = None

    def call_schema(self, arguments_key: str) -> dict[str, Any]:
        """The JSON schema of a call object ``{"name": <name>, <arguments_key>: {...}}``."""
        params = self.parameters or {"type": "object", "properties": {}}
        return {
            "type": "object",
            "properties": {"name": {"const": self.name}, arguments_key: dict(params)},
            "required": ["name", arguments_key],
            "additionalProperties": False,
        }


@dataclass(frozen=True)
class ToolDelta:
    """What one piece of the reply adds: ``content`` text and completed ``calls``."""

    content: str = ""
    calls: tuple[ToolCall, ...] = ()


def read_call(text: str | Mapping[str, Any], arguments_keys: Sequence[str]) -> ToolCall | str:
    """A call from its JSON text (or parsed object) with its name and its arguments under one
    of ``arguments_keys`` (absent: ``{}``); or why it is not one."""
    if isinstance(text, str):
        try:
            value: Any = json.loads(text)
        except ValueError as exc:
            return f"not JSON ({exc})"
    else:
        value = text
    if not isinstance(value, Mapping):
        return f"not a JSON object: {text!r:.60}"
    name = value.get("name")
    if not isinstance(name, str) or not name:
        return "no function name"
    key = next((k for k in arguments_keys if k in value), None)
    arguments = {} if key is None else value[key]
    if isinstance(arguments, str):  # some models write the arguments as a JSON string
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return f"the arguments of {name!r} are not JSON"
    if not isinstance(arguments, Mapping):
        return f"the arguments of {name!r} are not a JSON object"
    return ToolCall(name, json.dumps(arguments, ensure_ascii=False))


class ToolCallSplitter(ABC):
    """Splits a streamed reply into content and calls (module docstring). Call :meth:`push`
    with each text delta and :meth:`flush` once at the end; :attr:`content` and :attr:`calls`
    hold everything returned so far. ``max_calls``: calls past it are dropped (1 for
    ``parallel_tool_calls: false``)."""

    def __init__(self, max_calls: int | None = None) -> None:
        self.max_calls = max_calls
        self.content = ""
        self.calls: list[ToolCall] = []
        self._held = ""

    @abstractmethod
    def push(self, text: str) -> ToolDelta:
        """Take the next piece of the reply; what it adds."""

    @abstractmethod
    def flush(self) -> ToolDelta:
        """The end of the reply: what was held back (a second call returns nothing)."""

    def _delta(self, content: str, calls: Sequence[ToolCall] = ()) -> ToolDelta:
        room = None if self.max_calls is None else max(self.max_calls - len(self.calls), 0)
        kept = tuple(calls if room is None else calls[:room])
        if len(kept) < len(calls):
            LOG.info("tool calls past parallel_tool_calls' one were dropped")
        self.content += content
        self.calls += kept
        return ToolDelta(content, kept)

    @staticmethod
    def _unreadable(text: str, why: str) -> str:
        LOG.warning("the model's tool call could not be read (%s): returned as content", why)
        return text


class ToolFormat(ABC):
    """One family's call format: its splitter and its grammar."""

    name: ClassVar[str]

    @abstractmethod
    def splitter(self, max_calls: int | None = None) -> ToolCallSplitter:
        """A fresh splitter for one reply."""

    @abstractmethod
    def grammar(self, functions: Sequence[ToolFunction], parallel: bool) -> str:
        """The llguidance Lark grammar of a reply that is only calls to ``functions`` (one of
        them; several calls if ``parallel``), their arguments following each schema."""

    @staticmethod
    def _alternatives(functions: Sequence[ToolFunction], arguments_key: str) -> str:
        """Lark rules ``fn_0 ... fn_n`` (one call object each) and ``call_object``."""
        from edge_sdk.runtime.constraints import ResponseFormat

        # closed objects and one-line JSON, as response_format's json_schema writes it
        rules = [
            f"fn_{i}: {ResponseFormat.json_rule(f.call_schema(arguments_key))}"
            for i, f in enumerate(functions)
        ]
        choice = " | ".join(f"fn_{i}" for i in range(len(functions)))
        return "\n".join([f"call_object: {choice}", *rules])


def parse_tool_calls(
    text: str, fmt: ToolFormat, max_calls: int | None = None
) -> tuple[str, list[ToolCall]]:
    """A whole reply as (content, calls), as :class:`ToolCallSplitter` splits a stream."""
    splitter = fmt.splitter(max_calls)
    splitter.push(text)
    splitter.flush()
    return splitter.content, splitter.calls


def tool_format_for(template: ChatTemplate) -> ToolFormat | None:
    """The call format a chat template teaches: Hermes (``<tool_call>``) or Llama 3.x
    (``<|python_tag|>``, or ``"parameters"`` in a Llama 3 header template); None if neither."""
    from edge_sdk.runtime.tool_format_hermes import HermesFormat
    from edge_sdk.runtime.tool_format_llama3 import Llama3Format

    text = template.template
    if "<tool_call>" in text:
        return HermesFormat()
    if "<|python_tag|>" in text or ("<|start_header_id|>" in text and "parameters" in text):
        return Llama3Format()
    return None
