"""reasoning_content in /v1/chat/completions: the response builder on tricky deltas, and a real
server whose bundle has a thinking model's template, through the openai client (responses and
streams), with chat_template_kwargs and the off switches (request fields and server settings)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import pytest

from edge_sdk.runtime import Generator
from edge_sdk.runtime.reasoning import ReasoningSplitter
from edge_sdk.serve.openai_responses import ChatShape
from tests.chat_bundles import THINKING_TEMPLATE, with_chat_template
from tests.serve.served import MODEL, Served, running_server

MESSAGES = [{"role": "user", "content": "Tom had a red ball."}]
MAX_TOKENS = 12
OFF = {"enable_thinking": False}


def _deltas(shape: ChatShape, pieces: list[str]) -> list[dict[str, Any]]:
    chunks = [c for p in pieces for c in shape.pieces(p)] + shape.held()
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    return [c["choices"][0]["delta"] for c in chunks]


def test_stream_chunks_split_reasoning_from_content() -> None:
    pieces = ["\n<th", "ink>\nI plan", " more.\n</thi", "nk>\n", "\nThe", " answer.", "\n"]
    assert _deltas(ChatShape(MODEL, reasoning=ReasoningSplitter()), pieces) == [
        {"reasoning_content": "I plan"},
        {"reasoning_content": " more."},
        {"content": "The"},
        {"content": " answer."},
        {"content": "\n"},
    ]
    assert _deltas(ChatShape(MODEL, reasoning=ReasoningSplitter(opened=True)), ["a</think>b"]) == [
        {"reasoning_content": "a", "content": "b"}  # both in one delta, as vLLM sends them
    ]
    hidden = ChatShape(MODEL, reasoning=ReasoningSplitter(), include_reasoning=False)
    assert _deltas(hidden, pieces) == [
        {"content": "The"},
        {"content": " answer."},
        {"content": "\n"},
    ]
    cut = ChatShape(MODEL, reasoning=ReasoningSplitter(opened=True))
    assert _deltas(cut, ["I was cut </th"]) == [
        {"reasoning_content": "I was cut"},
        {"reasoning_content": " </th"},
    ]
    assert _deltas(ChatShape(MODEL), ["<think>x", "</think>y"]) == [
        {"content": "<think>x"},
        {"content": "</think>y"},
    ]


def test_a_response_carries_reasoning_content() -> None:
    def message(shape: ChatShape, text: str) -> dict[str, Any]:
        body = shape.response(text, "stop", {})
        return dict(body["choices"][0]["message"])

    text = "<think>\nThe user greets.\n</think>\n\nHello!"
    assert message(ChatShape(MODEL, reasoning=ReasoningSplitter()), text) == {
        "role": "assistant",
        "content": "Hello!",
        "reasoning_content": "The user greets.",
    }
    assert message(ChatShape(MODEL, reasoning=ReasoningSplitter()), "Hello!") == {
        "role": "assistant",
        "content": "Hello!",
        "reasoning_content": None,
    }
    hidden = ChatShape(MODEL, reasoning=ReasoningSplitter(), include_reasoning=False)
    assert message(hidden, text) == {"role": "assistant", "content": "Hello!"}
    assert message(ChatShape(MODEL), text) == {"role": "assistant", "content": text}


@pytest.fixture(scope="module")
def thinking_bundle(demo_bundle_int8: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return with_chat_template(
        demo_bundle_int8, tmp_path_factory.mktemp("thinking") / "bundle", THINKING_TEMPLATE
    )


def _reference(
    served: Served, reference: Generator, kwargs: dict[str, Any]
) -> tuple[list[int], str]:
    """The prompt ids (checked to open or close the block) and the model's raw reply to them."""
    assert served.state.engine is not None
    prompt = served.state.engine.generator.chat_prompt(MESSAGES, template_kwargs=kwargs)
    assert prompt.text.endswith("<think>\n\n</think>\n\n" if kwargs == OFF else "<think>\n")
    raw = reference.generate(prompt.ids, max_new_tokens=MAX_TOKENS, ignore_eos=True).text
    assert raw.strip() and "</think>" not in raw
    return prompt.ids, raw


def _ask(client: openai.OpenAI, **extra: Any) -> Any:
    return client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,  # type: ignore[arg-type]
        max_tokens=MAX_TOKENS,
        temperature=0,
        extra_body={"ignore_eos": True, **extra},
    )


def test_the_server_splits_reasoning(thinking_bundle: Path, reference: Generator) -> None:
    with running_server(thinking_bundle) as served:
        client = served.client()
        ids, raw = _reference(served, reference, {})
        reply = _ask(client)
        stream = client.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,  # type: ignore[arg-type]
            max_tokens=MAX_TOKENS,
            temperature=0,
            stream=True,
            extra_body={"ignore_eos": True},
        )
        deltas = [chunk.choices[0].delta for chunk in stream if chunk.choices]
        off_ids, off_raw = _reference(served, reference, OFF)
        off = _ask(client, chat_template_kwargs=OFF)
        unsplit = _ask(client, reasoning_format="none")
        hidden = _ask(client, include_reasoning=False)
        errors = {}
        for name, bad in {
            "chat_template_kwargs": {"chat_template_kwargs": [1]},
            "chat_template_kwargs.messages": {"chat_template_kwargs": {"messages": []}},
            "reasoning_format": {"reasoning_format": "xml"},
            "include_reasoning": {"include_reasoning": "yes"},
        }.items():
            with pytest.raises(openai.BadRequestError) as info:
                _ask(client, **bad)
            errors[name] = info.value.body

    # the prompt opened <think> and max_tokens cut the reply: all reasoning, no answer
    message = reply.choices[0].message
    assert reply.usage is not None and reply.usage.prompt_tokens == len(ids)
    assert message.model_extra["reasoning_content"] == raw.strip() and message.content == ""
    assert reply.choices[0].finish_reason == "length"
    streamed = "".join((d.model_extra or {}).get("reasoning_content") or "" for d in deltas)
    assert streamed == raw.strip() and "".join(d.content or "" for d in deltas) == ""
    # enable_thinking false closes the block in the prompt: the reply is the answer
    assert off.usage is not None and off.usage.prompt_tokens == len(off_ids) > len(ids)
    assert off.choices[0].message.content == off_raw
    assert off.choices[0].message.model_extra["reasoning_content"] is None
    # off per request: the text as the model wrote it, or the reasoning dropped
    assert unsplit.choices[0].message.content == raw
    assert "reasoning_content" not in unsplit.choices[0].message.model_extra
    assert hidden.choices[0].message.content == ""
    assert "reasoning_content" not in hidden.choices[0].message.model_extra
    for name, body in errors.items():
        assert isinstance(body, dict) and body["param"] == name, (name, body)
        assert name.split(".")[0] in body["message"]


def test_server_settings_reasoning_format_and_template_kwargs(
    thinking_bundle: Path, reference: Generator
) -> None:
    settings = {"reasoning_format": "none", "chat_template_kwargs": OFF}
    with running_server(thinking_bundle, settings=settings) as served:
        client = served.client()
        off_ids, off_raw = _reference(served, reference, OFF)
        ids, raw = _reference(served, reference, {"enable_thinking": True})
        default = _ask(client)
        overridden = _ask(client, chat_template_kwargs={"enable_thinking": True})
    assert default.usage is not None and default.usage.prompt_tokens == len(off_ids)
    assert default.choices[0].message.content == off_raw
    assert overridden.usage is not None and overridden.usage.prompt_tokens == len(ids)
    assert overridden.choices[0].message.content == raw  # not split: --reasoning-format none
    assert "reasoning_content" not in overridden.choices[0].message.model_extra
