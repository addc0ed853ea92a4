"""Tool calls read back from hand-written model replies (Hermes, Llama 3.x; several calls,
malformed ones, any stream split), the call grammar, and tools rendered by real templates."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from edge_sdk.chat_template import ChatTemplate
from edge_sdk.errors import GenerationError
from edge_sdk.runtime import ResponseFormat, ToolCall, ToolFunction, parse_tool_calls
from edge_sdk.runtime.tool_calls import ToolFormat, tool_format_for
from edge_sdk.runtime.tool_format_hermes import HermesFormat
from edge_sdk.runtime.tool_format_llama3 import Llama3Format
from edge_sdk.serve.openai_schema import parse_chat

FIXTURES = Path(__file__).parents[1] / "core" / "fixtures"
HERMES, LLAMA3 = HermesFormat(), Llama3Format()
WEATHER = '{"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}'
TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
# a Llama 3.1-style template (written here): tools in the system turn, calls as JSON objects
# with "parameters" rendered with tojson, results in ipython turns
LLAMA3_STYLE = (
    "{{ bos_token }}{% if tools %}<|start_header_id|>system<|end_header_id|>\n\n"
    'Answer a call as {"name": function name, "parameters": object}.\n'
    "{% for t in tools %}{{ t | tojson(indent=4) }}\n{% endfor %}<|eot_id|>{% endif %}"
    "{% for m in messages %}"
    "{% if m.tool_calls %}<|start_header_id|>assistant<|end_header_id|>\n\n"
    "{% set call = m.tool_calls[0].function %}"
    '{"name": "{{ call.name }}", "parameters": {{ call.arguments | tojson }}}<|eot_id|>'
    "{% elif m.role == 'tool' %}<|start_header_id|>ipython<|end_header_id|>\n\n"
    "{{ m.content }}<|eot_id|>"
    "{% else %}<|start_header_id|>{{ m.role }}<|end_header_id|>\n\n{{ m.content }}<|eot_id|>"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)


def _streamed(fmt: ToolFormat, text: str, size: int) -> tuple[str, list[ToolCall]]:
    splitter = fmt.splitter()
    content, calls = [], []
    for start in range(0, len(text), size):
        delta = splitter.push(text[start : start + size])
        content.append(delta.content)
        calls += delta.calls
    end = splitter.flush()
    return "".join(content) + end.content, [*calls, *end.calls]


def _named(calls: list[ToolCall]) -> list[tuple[str, Any]]:
    return [(c.name, json.loads(c.arguments)) for c in calls]


@pytest.mark.parametrize(
    ("fmt", "text", "content", "calls"),
    [
        (
            HERMES,
            f"<tool_call>\n{WEATHER}\n</tool_call>",
            "",
            [("get_weather", {"city": "Paris", "days": 2})],
        ),
        (
            HERMES,
            f"Checking.\n\n<tool_call>\n{WEATHER}\n</tool_call>\n<tool_call>\n"
            '{"name": "get_time", "arguments": "{\\"tz\\": \\"CET\\"}"}\n</tool_call>\n',
            "Checking.",
            [("get_weather", {"city": "Paris", "days": 2}), ("get_time", {"tz": "CET"})],
        ),
        (HERMES, '<tool_call>\n{"name": "now"}', "", [("now", {})]),  # unclosed, no arguments
        (HERMES, "No tools needed: 2 < 3 <tool", "No tools needed: 2 < 3 <tool", []),
        (
            HERMES,
            'Hi\n<tool_call>\n{"name": get_weather}\n</tool_call>\nbye',
            'Hi\n<tool_call>\n{"name": get_weather}\n</tool_call>\nbye',
            [],
        ),
        (
            HERMES,
            '<tool_call>\n{"arguments": {}}\n</tool_call>',
            '<tool_call>\n{"arguments": {}}\n</tool_call>',
            [],
        ),
        (
            LLAMA3,
            '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris"}}',
            "",
            [("get_weather", {"city": "Paris"})],
        ),
        (
            LLAMA3,
            ' {"name": "a", "parameters": {}}; {"name": "b", "arguments": {"x": [1, 2]}}',
            "",
            [("a", {}), ("b", {"x": [1, 2]})],
        ),
        (LLAMA3, '{"answer": 42}', '{"answer": 42}', []),  # JSON, not a call
        (LLAMA3, '{"name": "f", "parameters": {"x": ', '{"name": "f", "parameters": {"x":', []),
        (LLAMA3, "The weather is fine {ok}.", "The weather is fine {ok}.", []),
    ],
)
@pytest.mark.parametrize("size", [1, 3, 1000])
def test_replies_split_into_content_and_calls_in_any_stream_split(
    fmt: ToolFormat, text: str, content: str, calls: list[tuple[str, Any]], size: int
) -> None:
    whole_content, whole_calls = parse_tool_calls(text, fmt)
    assert (whole_content, _named(whole_calls)) == (content, calls)
    streamed_content, streamed_calls = _streamed(fmt, text, size)
    assert (streamed_content, _named(streamed_calls)) == (content, calls)
    assert all(c.id.startswith("call_") and len(c.id) == 29 for c in whole_calls)


def test_malformed_call_text_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="edge_sdk.runtime"):
        content, calls = parse_tool_calls("<tool_call>\n{oops}\n</tool_call>", HERMES)
    assert calls == [] and content == "<tool_call>\n{oops}\n</tool_call>"
    assert len(caplog.records) == 1 and "returned as content" in caplog.records[0].message


def test_max_calls_keeps_the_first() -> None:
    text = f"<tool_call>{WEATHER}</tool_call><tool_call>{WEATHER}</tool_call>"
    assert len(parse_tool_calls(text, HERMES)[1]) == 2
    assert len(parse_tool_calls(text, HERMES, max_calls=1)[1]) == 1


def test_the_format_follows_the_template() -> None:
    qwen3 = ChatTemplate((FIXTURES / "qwen3_chat_template.jinja").read_text(), "qwen3")
    assert isinstance(tool_format_for(qwen3), HermesFormat)
    assert isinstance(tool_format_for(ChatTemplate.from_file("chatml-tools")), HermesFormat)
    assert isinstance(tool_format_for(ChatTemplate(LLAMA3_STYLE, "llama")), Llama3Format)
    assert tool_format_for(ChatTemplate.plain()) is None
    gemma3 = ChatTemplate((FIXTURES / "gemma3_chat_template.jinja").read_text(), "gemma3")
    assert not gemma3.supports_tools and qwen3.supports_tools


def test_smollm2s_own_template_has_no_tool_support(smollm2_gguf: Path) -> None:
    from edge_sdk.exporters.gguf.tokenizer import gguf_chat_template
    from edge_sdk.gguf_header import read_gguf_header

    template = gguf_chat_template(read_gguf_header(smollm2_gguf).metadata)
    assert template is not None and "<|im_start|>" in template.template
    assert not template.supports_tools


def test_the_call_grammar_follows_the_schemas() -> None:
    functions = [
        ToolFunction("get_weather", None, TOOLS[0]["function"]["parameters"]),
        ToolFunction("ping"),
    ]
    lark = HERMES.grammar(functions, parallel=False)
    assert lark.startswith('start: call\ncall: "<tool_call>\\n" call_object "\\n</tool_call>"')
    assert '{"const": "get_weather"}' in lark and '{"const": "ping"}' in lark
    ResponseFormat.grammar(lark)  # llguidance compiles it
    ResponseFormat.grammar(LLAMA3.grammar(functions, parallel=True))
    bad = ToolFunction("f", None, {"type": "object", "properties": {"x": {"type": "nope"}}})
    with pytest.raises(GenerationError):
        ResponseFormat.grammar(HERMES.grammar([bad], parallel=False))


def _request_messages(arguments: str) -> list[dict[str, Any]]:
    body = {
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": arguments},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "18 C, clear"},
        ],
        "tools": TOOLS,
    }
    return parse_chat(body).messages


def test_qwen3s_template_renders_tools_as_transformers_does() -> None:
    transformers = pytest.importorskip("transformers")
    text = (FIXTURES / "qwen3_chat_template.jinja").read_text()
    messages = _request_messages('{"city": "Paris"}')  # arguments as the client sends them
    ours = ChatTemplate(text, "qwen3").render(messages, tools=TOOLS)
    hf_messages = [
        {k: v for k, v in m.items() if k != "content" or v is not None} for m in messages
    ]
    hf = transformers.PreTrainedTokenizerFast(tokenizer_object=_tiny_tokenizer())
    theirs = hf.apply_chat_template(
        hf_messages, tools=TOOLS, chat_template=text, tokenize=False, add_generation_prompt=True
    )
    assert ours == theirs
    assert (
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>' in ours
    )
    assert "<tools>\n" + json.dumps(TOOLS[0]) + "\n</tools>" in ours


def test_call_arguments_reach_llama3_templates_as_objects() -> None:
    ours = ChatTemplate(LLAMA3_STYLE, "llama", {"bos_token": "<|begin_of_text|>"}).render(
        _request_messages('{"city": "Paris"}'), tools=TOOLS
    )
    assert '{"name": "get_weather", "parameters": {"city": "Paris"}}<|eot_id|>' in ours
    assert '{\n    "type": "function",\n    "function": {' in ours  # tojson(indent=4)
    shipped = ChatTemplate.from_file("chatml-tools").render(
        _request_messages('{"city": "Paris"}'), tools=TOOLS
    )
    assert shipped.endswith(
        "<|im_start|>assistant\n<tool_call>\n"
        '{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>\n'
        "<|im_start|>user\n<tool_response>\n18 C, clear\n</tool_response><|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def _tiny_tokenizer() -> Any:
    tokenizers = pytest.importorskip("tokenizers")
    return tokenizers.Tokenizer(tokenizers.models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
