"""The OpenAI API with the real openai client: chat and text completions, streamed or not."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_sdk.runtime import Generator
from tests.serve.served import MODEL, Served, running_server

PROMPT = "Once upon a time, there was a little girl named Mia."
MESSAGES = [
    {"role": "system", "content": "You tell short stories."},
    {"role": "user", "content": "Tell me about a dog."},
]


@pytest.fixture(scope="module")
def served(demo_bundle_int8: Path) -> Iterator[Served]:
    with running_server(demo_bundle_int8) as server:
        yield server


def _chat_ids(served: Served, messages: list[dict[str, str]]) -> list[int]:
    assert served.state.engine is not None
    return served.state.engine.encode_chat(messages)


def test_chat_completion_is_the_greedy_single_request_output(
    served: Served, reference: Generator
) -> None:
    reply = served.client().chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=24, temperature=0
    )
    ids = _chat_ids(served, MESSAGES)
    expected = reference.generate(ids, max_new_tokens=24)
    assert reply.object == "chat.completion" and reply.model == MODEL
    assert reply.id.startswith("chatcmpl-")
    choice = reply.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == expected.text
    assert choice.finish_reason == {"eos": "stop", "max_new_tokens": "length"}[expected.stop_reason]
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == len(ids)
    assert reply.usage.completion_tokens == len(expected.token_ids)
    assert reply.usage.total_tokens == len(ids) + len(expected.token_ids)
    assert getattr(reply.usage, "energy", None) is None  # no power sensor on this server


def test_chat_stream_chunks_are_openai_shaped(served: Served, reference: Generator) -> None:
    body = {
        "model": MODEL,
        "messages": MESSAGES,
        "max_tokens": 16,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with served.http() as http, http.stream("POST", "/v1/chat/completions", json=body) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        raw = resp.read().decode()
    events = raw.split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]"
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-2]]
    assert all(e.startswith("data: ") for e in events[:-1])
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    *content, final, usage = chunks[1:]
    assert all(c["choices"][0]["finish_reason"] is None and c["usage"] is None for c in content)
    expected = reference.generate(_chat_ids(served, MESSAGES), max_new_tokens=16)
    assert "".join(c["choices"][0]["delta"]["content"] for c in content) == expected.text
    assert final["choices"][0]["delta"] == {}
    assert final["choices"][0]["finish_reason"] in ("stop", "length")
    assert usage["choices"] == []
    assert usage["usage"]["completion_tokens"] == len(expected.token_ids)


def test_chat_stream_with_the_openai_client(served: Served) -> None:
    client = served.client()
    whole = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=20, temperature=0
    )
    stream = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=20, temperature=0, stream=True
    )
    pieces, finish = [], None
    for chunk in stream:
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
    assert "".join(pieces) == whole.choices[0].message.content
    assert finish == whole.choices[0].finish_reason


def test_completion_and_its_stream(served: Served, reference: Generator) -> None:
    client = served.client()
    expected = reference.generate(PROMPT, max_new_tokens=12)
    reply = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=12, temperature=0)
    assert reply.object == "text_completion" and reply.id.startswith("cmpl-")
    assert reply.choices[0].text == expected.text
    assert reply.usage is not None and reply.usage.prompt_tokens == len(reference.encode(PROMPT))
    stream = client.completions.create(
        model=MODEL,
        prompt=PROMPT,
        max_tokens=12,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == expected.text
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 12
    assert chunks[-2].choices[0].finish_reason == "length"


def test_completion_options(served: Served, reference: Generator) -> None:
    client = served.client()
    ids = reference.encode(PROMPT)
    by_ids = client.completions.create(
        model=MODEL, prompt=ids, max_tokens=8, temperature=0, echo=True
    )
    expected = reference.generate(ids, max_new_tokens=8)
    assert by_ids.choices[0].text == reference.tokenizer.decode(ids) + expected.text
    long = reference.generate(PROMPT, max_new_tokens=40).text
    stop = long.split()[3]
    cut = client.completions.create(
        model=MODEL, prompt=PROMPT, max_tokens=40, temperature=0, stop=[stop, "zzz"]
    )
    assert cut.choices[0].finish_reason == "stop"
    assert cut.choices[0].text == long[: long.index(stop)]
    seeded = [
        client.completions.create(
            model=MODEL, prompt=PROMPT, max_tokens=16, temperature=1.0, top_p=0.9, seed=7
        )
        .choices[0]
        .text
        for _ in range(2)
    ]
    assert seeded[0] == seeded[1]
    extension = client.completions.create(
        model=MODEL, prompt=PROMPT, max_tokens=30, temperature=0, extra_body={"ignore_eos": True}
    )
    assert extension.usage is not None and extension.usage.completion_tokens == 30


def test_models(served: Served) -> None:
    client = served.client()
    models = client.models.list()
    assert [m.id for m in models.data] == [MODEL]
    assert client.models.retrieve(MODEL).id == MODEL
