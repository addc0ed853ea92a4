"""The tool fields of a chat request -> a checked :class:`ToolRequest`.

``tools`` (``{"type": "function", "function": {"name", "description", "parameters",
"strict"}}``), ``tool_choice`` (``"auto"``, ``"none"``, ``"required"`` or ``{"type":
"function", "function": {"name": ...}}``), ``parallel_tool_calls``, and in ``messages`` an
assistant's ``tool_calls`` and a tool result's ``tool_call_id``. A bad value is a 400 naming the
field (``tools[0].function.name``, ``messages[2].tool_call_id``). The legacy ``functions`` /
``function_call`` are refused with a 400 that points to ``tools``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from edge_sdk.runtime.tool_calls import ToolFunction
from edge_sdk.serve.errors import APIError, invalid

__all__ = [
    "ToolRequest",
    "parse_tool_call_id",
    "parse_tool_calls",
    "parse_tools",
    "refuse_legacy_functions",
]

_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")  # the OpenAI API's rule for function names
_CHOICES = ("auto", "none", "required")


@dataclass(frozen=True)
class ToolRequest:
    """``tools`` as sent (the list the chat template renders) and as functions; ``choice``:
    ``auto``, ``none``, ``required`` or ``function`` (then ``named`` is its name)."""

    tools: list[dict[str, Any]]
    functions: list[ToolFunction]
    choice: str = "auto"
    named: str | None = None
    parallel: bool = True

    @property
    def parsed(self) -> bool:
        """Whether the reply is read for calls (tools offered, choice not ``none``)."""
        return bool(self.functions) and self.choice != "none"

    @property
    def constrained(self) -> bool:
        """Whether the reply must be calls (``required`` or a named function)."""
        return self.choice in ("required", "function")

    def allowed(self) -> list[ToolFunction]:
        """The functions a constrained reply may call."""
        if self.choice == "function":
            return [f for f in self.functions if f.name == self.named]
        return list(self.functions)


def _function(index: int, raw: Any) -> ToolFunction:
    where = f"tools[{index}]"
    if not isinstance(raw, dict):
        raise invalid(
            where, f"{where} must be an object {{'type': 'function', ...}}", "invalid_type"
        )
    if raw.get("type", "function") != "function":
        raise invalid(
            f"{where}.type", f"{where}.type must be 'function', got {raw.get('type')!r:.40}"
        )
    spec = raw.get("function")
    if not isinstance(spec, dict):
        raise invalid(
            f"{where}.function",
            f"{where}.function must be an object with the function's 'name'",
            "missing_required_parameter" if spec is None else "invalid_type",
        )
    name = spec.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise invalid(
            f"{where}.function.name",
            f"{where}.function.name must be the function's name (letters, digits, _ and -, at "
            f"most 64), got {name!r:.80}",
            "missing_required_parameter" if name is None else "invalid_value",
        )
    description = spec.get("description")
    if description is not None and not isinstance(description, str):
        raise invalid(
            f"{where}.function.description",
            f"{where}.function.description must be a string",
            "invalid_type",
        )
    parameters = spec.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise invalid(
            f"{where}.function.parameters",
            f"{where}.function.parameters must be a JSON schema object",
            "invalid_type",
        )
    return ToolFunction(name, description, parameters)


def _choice(value: Any, names: list[str]) -> tuple[str, str | None]:
    if value is None:
        return "auto", None
    if value in _CHOICES:
        if value == "required" and not names:
            raise invalid("tool_choice", "tool_choice 'required' needs 'tools' to call")
        return str(value), None
    if isinstance(value, dict) and value.get("type") == "function":
        spec = value.get("function")
        name = spec.get("name") if isinstance(spec, dict) else None
        if name not in names:
            raise invalid(
                "tool_choice.function.name",
                f"tool_choice names the function {name!r:.80}, which is not in 'tools' "
                f"({', '.join(names) or 'none given'})",
            )
        return "function", str(name)
    raise invalid(
        "tool_choice",
        "'tool_choice' must be 'auto', 'none', 'required' or "
        f'{{"type": "function", "function": {{"name": ...}}}}, got {value!r:.80}',
    )


def parse_tools(tools: Any, tool_choice: Any, parallel: Any) -> ToolRequest:
    """The checked tool fields (absent ``tools`` or ``[]``: no tools)."""
    if tools is None:
        tools = []
    if not isinstance(tools, list):
        raise invalid("tools", "'tools' must be a list of function tools", "invalid_type")
    functions = [_function(i, t) for i, t in enumerate(tools)]
    names = [f.name for f in functions]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise invalid("tools", f"'tools' defines the function {twice[0]!r} twice")
    if parallel is not None and not isinstance(parallel, bool):
        raise invalid("parallel_tool_calls", "'parallel_tool_calls' must be true or false")
    choice, named = _choice(tool_choice, names)
    listed = [{"type": "function", "function": t["function"]} for t in tools]
    return ToolRequest(listed, functions, choice, named, parallel is not False)


def parse_tool_calls(where: str, value: Any) -> list[dict[str, Any]]:
    """An assistant message's ``tool_calls``, checked, with each call's arguments as an object
    (what Qwen2.5's and Llama 3.x's templates pass to ``tojson``)."""
    if not isinstance(value, list):
        raise invalid(f"{where}.tool_calls", f"{where}.tool_calls must be a list", "invalid_type")
    calls = []
    for j, call in enumerate(value):
        at = f"{where}.tool_calls[{j}]"
        spec = call.get("function") if isinstance(call, dict) else None
        if not isinstance(spec, dict):
            raise invalid(
                f"{at}.function", f"{at} must be {{'id', 'type': 'function', 'function'}}"
            )
        name = spec.get("name")
        if not isinstance(name, str) or not name:
            raise invalid(f"{at}.function.name", f"{at}.function.name must be the function's name")
        arguments = spec.get("arguments", "{}")
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments or "{}")
            except ValueError as exc:
                raise invalid(
                    f"{at}.function.arguments", f"{at}.function.arguments is not JSON: {exc}"
                ) from exc
        if not isinstance(arguments, dict):
            raise invalid(
                f"{at}.function.arguments", f"{at}.function.arguments must be a JSON object"
            )
        call_id = call.get("id")
        if call_id is not None and not isinstance(call_id, str):
            raise invalid(f"{at}.id", f"{at}.id must be a string", "invalid_type")
        calls.append(
            {
                "id": call_id,
                "type": "function",
                "function": {"name": name, "arguments": arguments},
            }
        )
    return calls


def parse_tool_call_id(where: str, value: Any) -> str:
    """A tool message's ``tool_call_id`` (required)."""
    if not isinstance(value, str) or not value:
        raise invalid(
            f"{where}.tool_call_id",
            f"{where} has role 'tool' but no 'tool_call_id': give the id of the call it answers",
            "missing_required_parameter" if value is None else "invalid_value",
        )
    return value


def refuse_legacy_functions(name: str, value: Any) -> None:
    """``functions`` / ``function_call`` (deprecated by OpenAI): 400 pointing to ``tools``."""
    if value not in (None, [], "none", "auto"):
        raise APIError(
            400,
            f"'{name}' is the deprecated form of tool calling and is not supported: send "
            "'tools' (and 'tool_choice') instead",
            param=name,
            code="unsupported_parameter",
        )
