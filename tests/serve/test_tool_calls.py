"""Tool calling through a real edge-serve on SmolLM2-135M-Instruct and the real openai client:
a round trip (constrained call -> tool result -> text answer), a streamed call reassembled by
the client, and the 400s (a template without tool support, bad tools, bad tool messages)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import openai
import pytest

from edge_sdk.chat_template import ChatTemplate
from tests.serve.served import MODEL, Served, running_server

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 20},
        "unit": {"enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "unit"],
}
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The current weather in a city.",
            "parameters": WEATHER_SCHEMA,
        },
    },
    {
        "type": "function",
        "function": {"name": "get_time", "description": "The local time in a city."},
    },
]
ASK: list[Any] = [{"role": "user", "content": "What is the weather in Paris?"}]
WEATHER = {"type": "function", "function": {"name": "get_weather"}}
BAD = {"type": "object", "properties": {"x": {"type": "integer", "minimum": "zero"}}}


@pytest.fixture(scope="module")
def served(smollm2_int8: Path) -> Iterator[Served]:
    template = ChatTemplate.from_file("chatml-tools")
    with running_server(smollm2_int8, settings={"chat_template": template}) as server:
        yield server


def test_round_trip_call_tool_result_answer(served: Served) -> None:
    client = served.client()
    first = client.chat.completions.create(
        model=MODEL, messages=ASK, tools=TOOLS, tool_choice=WEATHER, max_tokens=60, temperature=0
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls", choice
    calls = choice.message.tool_calls
    assert calls is not None and len(calls) == 1 and choice.message.content is None
    call = calls[0]
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    arguments = json.loads(call.function.arguments)  # type: ignore[union-attr]
    jsonschema.validate(arguments, WEATHER_SCHEMA)

    followed = [
        *ASK,
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": '{"temperature": 18, "sky": "clear"}'},
    ]
    answer = client.chat.completions.create(
        model=MODEL, messages=followed, tools=TOOLS, max_tokens=24, temperature=0
    )
    second = answer.choices[0]
    assert second.finish_reason in ("stop", "length")
    assert second.message.tool_calls is None and second.message.content


def test_a_streamed_call_equals_the_returned_one(served: Served) -> None:
    client = served.client()
    asked: dict[str, Any] = {
        "model": MODEL,
        "messages": ASK,
        "tools": TOOLS,
        "tool_choice": "required",
        "parallel_tool_calls": False,  # SmolLM2 makes two calls here when it may
        "max_tokens": 60,
        "temperature": 0,
    }
    whole = client.chat.completions.create(**asked).choices[0]
    with client.chat.completions.stream(**asked) as stream:
        for _ in stream:
            pass
        streamed = stream.get_final_completion().choices[0]
    assert whole.finish_reason == streamed.finish_reason == "tool_calls"
    assert whole.message.tool_calls and streamed.message.tool_calls
    mine = [(c.function.name, c.function.arguments) for c in whole.message.tool_calls]  # type: ignore[union-attr]
    theirs = [(c.function.name, c.function.arguments) for c in streamed.message.tool_calls]  # type: ignore[union-attr]
    assert mine == theirs and len(mine) == 1
    assert mine[0][0] in ("get_weather", "get_time")
    if mine[0][0] == "get_weather":
        jsonschema.validate(json.loads(mine[0][1]), WEATHER_SCHEMA)
    else:
        assert json.loads(mine[0][1]) == {}


@pytest.mark.parametrize(
    ("change", "param"),
    [
        (
            {"tools": [{"type": "function", "function": {"description": "x"}}]},
            "tools[0].function.name",
        ),
        (
            {"tool_choice": {"type": "function", "function": {"name": "fly"}}},
            "tool_choice.function.name",
        ),
        ({"tool_choice": "always"}, "tool_choice"),
        (
            {"messages": [*ASK, {"role": "tool", "content": "18 C"}]},
            "messages[1].tool_call_id",
        ),
        (
            {
                "messages": [
                    *ASK,
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "id": "c",
                                "type": "function",
                                "function": {"name": "f", "arguments": "{x"},
                            }
                        ],
                    },
                ]
            },
            "messages[1].tool_calls[0].function.arguments",
        ),
        ({"functions": [{"name": "f"}]}, "functions"),
        (
            {
                "tools": [
                    *TOOLS,
                    {"type": "function", "function": {"name": "f", "parameters": BAD}},
                ],
                "tool_choice": "required",
            },
            "tools[2].function.parameters",
        ),
        (
            {"tool_choice": "required", "response_format": {"type": "json_object"}},
            "response_format",
        ),
    ],
)
def test_bad_tool_fields_are_400_naming_the_field(
    served: Served, change: dict[str, Any], param: str
) -> None:
    body = {"model": MODEL, "messages": ASK, "tools": TOOLS, "max_tokens": 4, **change}
    with served.http() as http:
        response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


def test_a_template_without_tool_support_is_a_clear_400(smollm2_int8: Path) -> None:
    with running_server(smollm2_int8, slots=1) as server:  # SmolLM2's own template
        client = server.client()
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(model=MODEL, messages=ASK, tools=TOOLS, max_tokens=4)
        plain = client.chat.completions.create(
            model=MODEL, messages=ASK, tools=TOOLS, tool_choice="none", max_tokens=4
        )
    error = info.value.body
    assert isinstance(error, dict) and error["param"] == "tools"
    assert (
        "no tool support" in error["message"] and "--chat-template chatml-tools" in error["message"]
    )
    assert plain.choices[0].message.tool_calls is None


def test_edge_serve_refuses_an_unreadable_chat_template(tmp_path: Path, smollm2_int8: Path) -> None:
    from edge_sdk.serve.cli import main

    bad = tmp_path / "bad.jinja"
    bad.write_text("{% for m in messages %}", encoding="utf-8")
    assert main([str(smollm2_int8), "--chat-template", str(bad), "--port", "0"]) == 1
    assert main([str(smollm2_int8), "--chat-template", str(tmp_path / "none.jinja")]) == 1


def test_a_thinking_models_calls_come_after_its_reasoning() -> None:
    from edge_sdk.runtime.reasoning import ReasoningSplitter
    from edge_sdk.runtime.tool_format_hermes import HermesFormat
    from edge_sdk.serve.openai_responses import ChatShape

    reply = (
        "<think>\nThe user wants the weather.\n</think>\n\nLet me look.\n<tool_call>\n"
        '{"name": "get_weather", "arguments": {"city": "Oslo", "unit": "celsius"}}\n</tool_call>'
    )
    whole = ChatShape(MODEL, reasoning=ReasoningSplitter(), tools=HermesFormat().splitter())
    choice = whole.response(reply, "stop", {})["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    message = choice["message"]
    assert message["reasoning_content"] == "The user wants the weather."
    assert message["content"] == "Let me look."
    assert [c["function"]["name"] for c in message["tool_calls"]] == ["get_weather"]

    streamed = ChatShape(MODEL, reasoning=ReasoningSplitter(), tools=HermesFormat().splitter())
    chunks = [c for i in range(0, len(reply), 5) for c in streamed.pieces(reply[i : i + 5])]
    chunks += [*streamed.held(), streamed.final("stop")]
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert "".join(d.get("content", "") for d in deltas) == "Let me look."
    calls = [t for d in deltas for t in d.get("tool_calls", [])]
    assert calls[0]["id"].startswith("call_") and calls[0]["function"]["arguments"] == ""
    assert calls[1] == {
        "index": 0,
        "function": {"arguments": message["tool_calls"][0]["function"]["arguments"]},
    }
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_a_forced_call_is_not_taken_for_reasoning(smollm2_int8: Path) -> None:
    shipped = ChatTemplate.from_file("chatml-tools")
    opens_think = shipped.template.replace(
        '{{- "<|im_start|>assistant\\n" -}}', '{{- "<|im_start|>assistant\\n<think>\\n" -}}'
    )
    assert opens_think != shipped.template
    template = ChatTemplate(opens_think, "opens-think")
    with running_server(smollm2_int8, slots=1, settings={"chat_template": template}) as server:
        reply = server.client().chat.completions.create(
            model=MODEL, messages=ASK, tools=TOOLS, tool_choice=WEATHER, max_tokens=60
        )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    assert choice.message.tool_calls[0].function.name == "get_weather"  # type: ignore[union-attr]
