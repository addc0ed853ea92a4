"""OpenAI request bodies -> checked engine arguments, field by field.

Every field the OpenAI API defines for ``/v1/chat/completions`` and ``/v1/completions`` is either
honoured, accepted at its default and ignored (it changes nothing here), or refused with a 400
when set to something the server cannot honour (``n > 1``, ``suffix``...): the
table is in ``serve/README.md``. Unknown fields are refused, as the OpenAI API does, so a typo
never silently does nothing. ``response_format`` (structured output) is read by
:mod:`edge_sdk.serve.openai_response_format`, on ``/v1/completions`` too (an extension); the
tool fields by :mod:`edge_sdk.serve.openai_tools`.
``top_k``, ``repetition_penalty`` and ``ignore_eos`` are extensions with vLLM's names; so are
the chat fields ``chat_template_kwargs`` (extra chat template variables, as vLLM and
llama-server take them) and ``include_reasoning``, and ``reasoning_format`` is llama-server's.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edge_sdk.chat_template import RESERVED_VARIABLES
from edge_sdk.errors import GenerationError
from edge_sdk.runtime.logprobs import MAX_LOGPROBS
from edge_sdk.runtime.options import GenerationOptions
from edge_sdk.runtime.reasoning import REASONING_FORMATS
from edge_sdk.serve.errors import APIError, invalid
from edge_sdk.serve.openai_response_format import parse_response_format
from edge_sdk.serve.openai_tools import (
    ToolRequest,
    parse_tool_call_id,
    parse_tool_calls,
    parse_tools,
    refuse_legacy_functions,
)

__all__ = [
    "UNTIL_CONTEXT_FULL",
    "ChatRequest",
    "CompletionRequest",
    "Sampling",
    "parse_chat",
    "parse_completion",
]

MAX_STOPS = 4
UNTIL_CONTEXT_FULL = 2**31 - 1  # max_new_tokens without max_tokens: the context ends it
COMPLETIONS_DEFAULT_MAX_TOKENS = 16  # the OpenAI API's default for /v1/completions
_ROLES = {"system", "developer", "user", "assistant", "tool"}
# accepted and ignored whatever their value: they change nothing a local model could honour
_IGNORED = (
    "user",
    "metadata",
    "store",
    "service_tier",
    "prediction",
    "reasoning_effort",
    "prompt_cache_key",
    "safety_identifier",
    "verbosity",
)


@dataclass(frozen=True)
class Sampling:
    """What the engine is asked for (``options``, built once from the body: without
    ``max_tokens``, :data:`UNTIL_CONTEXT_FULL`) and how to answer."""

    options: GenerationOptions
    stream: bool
    include_usage: bool


@dataclass(frozen=True)
class ChatRequest:
    """A checked chat request. ``reasoning_format`` None: the server's ``--reasoning-format``."""

    messages: list[dict[str, Any]]
    sampling: Sampling
    template_kwargs: dict[str, Any] = field(default_factory=dict)
    reasoning_format: str | None = None
    include_reasoning: bool = True
    tools: ToolRequest = field(default_factory=lambda: ToolRequest([], []))


@dataclass(frozen=True)
class CompletionRequest:
    """A checked completion request; ``logprobs`` as asked (None: none in the response)."""

    prompt: str | list[int]
    echo: bool
    sampling: Sampling
    logprobs: int | None = None


class _Fields:
    """Reads a request body's fields, remembering which were read (the rest are unknown)."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body
        self.read: set[str] = set()

    def get(self, name: str) -> Any:
        self.read.add(name)
        return self.body.get(name)

    def number(
        self, name: str, default: float, lo: float, hi: float, *, lo_open: bool = False
    ) -> float:
        value = self.get(name)
        if value is None:
            return default
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            raise invalid(name, f"'{name}' must be a number, got {value!r}", "invalid_type")
        if value > hi or value < lo or (lo_open and value == lo):
            left = "(" if lo_open else "["
            raise invalid(name, f"'{name}' must be in {left}{lo:g}, {hi:g}], got {value!r}")
        return float(value)

    def integer(self, name: str, lo: int | None = None) -> int | None:
        value = self.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise invalid(name, f"'{name}' must be an integer, got {value!r}", "invalid_type")
        if lo is not None and value < lo:
            raise invalid(name, f"'{name}' must be at least {lo}, got {value}")
        return value

    def boolean(self, name: str, default: bool = False) -> bool:
        value = self.get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise invalid(name, f"'{name}' must be true or false, got {value!r}", "invalid_type")
        return value

    def only_default(self, name: str, ok: Callable[[Any], bool], why: str) -> None:
        """Refuse ``name`` unless it is absent, null or a value that asks for nothing."""
        value = self.get(name)
        if value is not None and not ok(value):
            raise APIError(
                400,
                f"'{name}' = {value!r} is not supported: {why}",
                param=name,
                code="unsupported_parameter",
            )

    def check_unknown(self) -> None:
        unknown = sorted(set(self.body) - self.read - set(_IGNORED))
        if unknown:
            raise APIError(
                400,
                f"unknown field(s) {', '.join(map(repr, unknown))}: see the "
                "supported fields in edge-serve's README",
                param=unknown[0],
                code="unknown_parameter",
            )


def _stops(fields: _Fields) -> tuple[str, ...]:
    value = fields.get("stop")
    if value is None:
        return ()
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
        raise invalid(
            "stop",
            f"'stop' must be a non-empty string or a list of them, got {value!r}",
            "invalid_type",
        )
    if len(stops) > MAX_STOPS:
        raise invalid("stop", f"'stop' takes at most {MAX_STOPS} strings, got {len(stops)}")
    return tuple(stops)


def _logprobs_count(fields: _Fields, name: str) -> int | None:
    """An optional number of top alternatives, 0 to :data:`MAX_LOGPROBS`."""
    count = fields.integer(name, lo=0)
    if count is not None and count > MAX_LOGPROBS:
        raise invalid(name, f"'{name}' must be at most {MAX_LOGPROBS}, got {count}")
    return count


def _sampling(
    fields: _Fields,
    max_tokens: int | None,
    logprobs: int | None = None,
    prompt_logprobs: int | None = None,
) -> Sampling:
    model = fields.get("model")  # any name is accepted; responses carry the served model's
    if model is not None and not isinstance(model, str):
        raise invalid("model", "'model' must be a string", "invalid_type")
    n = fields.integer("n", lo=1)
    if n is not None and n != 1:
        raise APIError(
            400,
            f"'n' = {n} is not supported: this server returns one choice per "
            "request; send n requests instead (they run concurrently)",
            param="n",
            code="unsupported_value",
        )
    seed = fields.integer("seed")
    if seed is not None and not 0 <= seed < 2**64:
        raise invalid("seed", f"'seed' must be between 0 and 2**64 - 1, got {seed}")
    top_k = fields.integer("top_k", lo=-1)
    for name in ("presence_penalty", "frequency_penalty"):
        fields.number(name, 0.0, -2.0, 2.0)
        fields.only_default(
            name, lambda v: v == 0, "use 'repetition_penalty' (> 1 penalizes tokens already seen)"
        )
    fields.only_default("logit_bias", lambda v: v == {}, "logit biases are not applied here")
    response_format = parse_response_format(fields.get("response_format"))
    stream = fields.boolean("stream")
    options = fields.get("stream_options")
    include_usage = False
    if options is not None:
        if not stream:
            raise invalid("stream_options", "'stream_options' is only allowed with stream: true")
        if not isinstance(options, dict):
            raise invalid("stream_options", "'stream_options' must be an object", "invalid_type")
        include_usage = bool(_Fields(options).boolean("include_usage"))
    try:
        generation = GenerationOptions(
            max_new_tokens=UNTIL_CONTEXT_FULL if max_tokens is None else max_tokens,
            temperature=fields.number("temperature", 1.0, 0.0, 2.0),
            top_p=fields.number("top_p", 1.0, 0.0, 1.0, lo_open=True),
            top_k=max(top_k or 0, 0),
            repetition_penalty=fields.number("repetition_penalty", 1.0, 0.0, 10.0, lo_open=True),
            seed=seed,
            stop=_stops(fields),
            ignore_eos=fields.boolean("ignore_eos"),
            response_format=response_format,
            logprobs=logprobs,
            prompt_logprobs=prompt_logprobs,
            cache_prompt=fields.boolean("cache_prompt", default=True),
            # false: no speculative decoding for this request (true: the server's default)
            speculative=None if fields.boolean("speculative", default=True) else False,
        )
    except GenerationError as exc:  # the fields above are checked; this is a last guard
        raise APIError(400, str(exc), code="invalid_value") from exc
    return Sampling(generation, stream=stream, include_usage=include_usage)


def _object(body: Any) -> _Fields:
    if not isinstance(body, dict):
        raise APIError(400, "the request body must be a JSON object", code="invalid_type")
    return _Fields(body)


def _message(index: int, raw: Any) -> dict[str, Any]:
    where = f"messages[{index}]"
    if not isinstance(raw, dict):
        raise invalid(where, f"{where} must be an object with 'role' and 'content'", "invalid_type")
    role = raw.get("role")
    if role not in _ROLES:
        raise invalid(
            f"{where}.role", f"{where}.role must be one of {sorted(_ROLES)}, got {role!r}"
        )
    content = raw.get("content")
    if content is None:
        content = ""
    elif isinstance(content, list):
        parts = []
        for part in content:
            if (
                not isinstance(part, dict)
                or part.get("type") != "text"
                or not isinstance(part.get("text"), str)
            ):
                raise APIError(
                    400,
                    f"{where}.content: only text parts are supported (got {part!r:.80})",
                    param=f"{where}.content",
                    code="unsupported_parameter",
                )
            parts.append(part["text"])
        content = "".join(parts)
    elif not isinstance(content, str):
        raise invalid(
            f"{where}.content",
            f"{where}.content must be a string or a list of text parts",
            "invalid_type",
        )
    message: dict[str, Any] = {
        "role": "system" if role == "developer" else role,
        "content": content,
    }
    if role == "assistant" and raw.get("tool_calls"):
        message["tool_calls"] = parse_tool_calls(where, raw["tool_calls"])
    elif raw.get("tool_calls"):
        raise invalid(f"{where}.tool_calls", "only assistant messages carry tool_calls")
    if role == "tool":
        message["tool_call_id"] = parse_tool_call_id(where, raw.get("tool_call_id"))
    if isinstance(raw.get("name"), str):
        message["name"] = raw["name"]
    return message


def _template_kwargs(fields: _Fields) -> dict[str, Any]:
    value = fields.get("chat_template_kwargs")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid(
            "chat_template_kwargs",
            "'chat_template_kwargs' must be an object of template variables, e.g. "
            f'{{"enable_thinking": false}}, got {value!r:.80}',
            "invalid_type",
        )
    reserved = sorted(RESERVED_VARIABLES.intersection(value))
    if reserved:
        raise invalid(
            f"chat_template_kwargs.{reserved[0]}",
            f"'chat_template_kwargs' may not set {reserved[0]!r}: the server sets it",
        )
    return value


def _reasoning_format(fields: _Fields) -> str | None:
    value = fields.get("reasoning_format")
    if value is None:
        return None
    if value not in REASONING_FORMATS:
        raise invalid(
            "reasoning_format",
            f"'reasoning_format' must be one of {', '.join(REASONING_FORMATS)}, got {value!r}",
        )
    return str(value)


def parse_chat(body: Any) -> ChatRequest:
    """A ``/v1/chat/completions`` body, checked (:class:`APIError` 400 otherwise)."""
    fields = _object(body)
    messages = fields.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid(
            "messages",
            "'messages' must be a non-empty list of messages",
            "missing_required_parameter" if messages is None else "invalid_type",
        )
    parsed = [_message(i, m) for i, m in enumerate(messages)]
    max_tokens = fields.integer("max_tokens", lo=1)
    max_completion = fields.integer("max_completion_tokens", lo=1)
    logprobs = fields.boolean("logprobs")
    top_logprobs = _logprobs_count(fields, "top_logprobs")
    if top_logprobs is not None and not logprobs:
        raise invalid("top_logprobs", "'top_logprobs' needs 'logprobs': true")
    tools = parse_tools(
        fields.get("tools"), fields.get("tool_choice"), fields.get("parallel_tool_calls")
    )
    for name in ("functions", "function_call"):
        refuse_legacy_functions(name, fields.get(name))
    fields.only_default("modalities", lambda v: v == ["text"], "only text is produced")
    fields.only_default("audio", lambda v: False, "only text is produced")
    fields.only_default("web_search_options", lambda v: False, "there is no web search")
    sampling = _sampling(
        fields,
        max_completion if max_completion is not None else max_tokens,
        logprobs=(top_logprobs or 0) if logprobs else None,
    )
    chat = ChatRequest(
        parsed,
        sampling,
        _template_kwargs(fields),
        _reasoning_format(fields),
        fields.boolean("include_reasoning", default=True),
        tools,
    )
    if tools.constrained and sampling.options.response_format is not None:
        raise invalid(
            "response_format",
            f"'response_format' cannot be combined with tool_choice {tools.choice!r}: the "
            "reply is then a tool call",
        )
    fields.check_unknown()
    return chat


def _prompt(value: Any) -> str | list[int]:
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], (str, list)):
        value = value[0]  # one prompt in a list
    if isinstance(value, str):
        if not value:
            raise invalid("prompt", "'prompt' is empty: give some text to continue")
        return value
    if (
        isinstance(value, list)
        and value
        and all(isinstance(i, int) and not isinstance(i, bool) for i in value)
    ):
        return list(value)
    if (
        isinstance(value, list)
        and len(value) > 1
        and all(isinstance(p, (str, list)) for p in value)
    ):
        raise APIError(
            400,
            f"'prompt' holds {len(value)} prompts: this server takes one per "
            "request; send one request per prompt (they run concurrently)",
            param="prompt",
            code="unsupported_value",
        )
    raise invalid(
        "prompt",
        "'prompt' must be a string or a list of token ids",
        "missing_required_parameter" if value is None else "invalid_type",
    )


def parse_completion(body: Any) -> CompletionRequest:
    """A ``/v1/completions`` body, checked (:class:`APIError` 400 otherwise)."""
    fields = _object(body)
    prompt = _prompt(fields.get("prompt"))
    max_tokens = fields.integer("max_tokens", lo=0)
    echo = fields.boolean("echo")
    if max_tokens == 0 and not echo:
        raise invalid(
            "max_tokens", "'max_tokens' must be at least 1 (0 only with echo: true), got 0"
        )
    logprobs = _logprobs_count(fields, "logprobs")
    # with echo, the prompt's logprobs; max_tokens 0 scores (runs) the prompt all the same
    prompt_logprobs = logprobs if echo and logprobs is not None else None
    if max_tokens == 0 and prompt_logprobs is None:
        prompt_logprobs = 0
    fields.only_default("suffix", lambda v: v == "", "insertion (suffix) is not supported")
    fields.only_default("best_of", lambda v: v == 1, "this server returns one choice per request")
    sampling = _sampling(
        fields,
        COMPLETIONS_DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens,
        logprobs=logprobs,
        prompt_logprobs=prompt_logprobs,
    )
    fields.check_unknown()
    return CompletionRequest(prompt, echo, sampling, logprobs)
