"""Logprobs through edge-serve with the real openai client: chat (``logprobs``/``top_logprobs``,
streamed or not), completions (the legacy shape), ``echo`` + ``logprobs`` scoring a prompt as
lm-evaluation-harness's ``local-completions`` asks for it, and the 400s."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge_sdk.runtime import Generator, TokenEvent, TokenLogprob
from edge_sdk.runtime.reasoning import ReasoningSplitter
from edge_sdk.serve.openai_logprobs import ChatLogprobs, TokenNames
from edge_sdk.serve.openai_responses import ChatShape
from tests.runtime.logprob_reference import prompt_logprobs
from tests.serve.served import MODEL, Served, running_server

PROMPT = "Once upon a time, there was a little dog"
MESSAGES = [{"role": "user", "content": "Tell me about a dog."}]
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def served(demo_bundle_int8: Path) -> Iterator[Served]:
    with running_server(demo_bundle_int8, slots=2) as server:
        yield server


def _token_text(reference: Generator, token_id: int) -> tuple[str, list[int]]:
    raw = reference.tokenizer.token_bytes(token_id)
    return raw.decode("utf-8", errors="replace"), list(raw)


def test_chat_logprobs_streamed_and_not(served: Served, reference: Generator) -> None:
    ids = served.state.engine.encode_chat(MESSAGES)  # type: ignore[union-attr]
    expected = reference.generate(ids, max_new_tokens=8, logprobs=3)
    assert expected.logprobs is not None
    client = served.client()
    reply = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=8, temperature=0, logprobs=True, top_logprobs=3
    )
    assert reply.choices[0].logprobs is not None
    content = reply.choices[0].logprobs.content
    assert content is not None and len(content) == len(expected.token_ids)
    for item, entry in zip(content, expected.logprobs, strict=True):
        assert (item.token, item.bytes) == _token_text(reference, entry.token_id)
        assert entry.logprob is not None and abs(item.logprob - entry.logprob) < TOLERANCE
        assert [t.logprob for t in item.top_logprobs] == sorted(
            (t.logprob for t in item.top_logprobs), reverse=True
        )
        assert len(item.top_logprobs) == 3 and item.top_logprobs[0].token == item.token
        for top, alt in zip(item.top_logprobs, entry.top, strict=True):
            assert (top.token, top.bytes) == _token_text(reference, alt.token_id)
    assert "".join(i.token for i in content).startswith(reply.choices[0].message.content or "")

    stream = client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        max_tokens=8,
        temperature=0,
        logprobs=True,
        top_logprobs=3,
        stream=True,
    )
    streamed = [
        item
        for chunk in stream
        if chunk.choices and chunk.choices[0].logprobs is not None
        for item in chunk.choices[0].logprobs.content or []
    ]
    assert [i.token for i in streamed] == [i.token for i in content]
    # the second request reuses the first's cached prompt: the same numbers to float rounding
    assert [i.logprob for i in streamed] == pytest.approx([i.logprob for i in content], abs=1e-6)

    plain = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=2)
    assert plain.choices[0].logprobs is None


def test_streamed_logprobs_cover_every_token_once(served: Served) -> None:
    """A sampled stream: one entry per generated token, in order, their bytes joined are the
    streamed text; a token whose text is held back rides on a later chunk (shape level:
    test_held_back_tokens_ride_on_the_next_chunk)."""
    stream = served.client().chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        max_tokens=40,
        temperature=2.0,
        seed=3,
        logprobs=True,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"ignore_eos": True},
    )
    text, raw, usage, count = "", b"", None, 0
    for chunk in stream:
        usage = chunk.usage or usage
        if not chunk.choices:
            continue
        text += chunk.choices[0].delta.content or ""
        for item in (chunk.choices[0].logprobs and chunk.choices[0].logprobs.content) or []:
            raw += bytes(item.bytes or [])
            count += 1
            assert item.logprob <= 0 and item.top_logprobs == []
    assert usage is not None and usage.completion_tokens == count == 40
    # an end-of-sequence token (ignore_eos) has its own text in logprobs, none in the content
    assert raw.decode("utf-8", errors="replace").replace("<|endoftext|>", "") == text


def test_held_back_tokens_ride_on_the_next_chunk(reference: Generator) -> None:
    """Three tokens of one character: the first two add no text (no chunk), the third's chunk
    carries all three entries; a last token without text rides on the final chunk."""
    shape = ChatShape(MODEL, logprobs=ChatLogprobs(TokenNames(reference.tokenizer)))
    pieces = ["", "", "猫", " ok", ""]
    chunks = [
        c
        for i, piece in enumerate(pieces)
        for c in shape.token(TokenEvent(100 + i, piece, i, 0.0, "", -1.0 - i))
    ]
    chunks.append(shape.final("length"))
    carried = [[item["logprob"] for item in c["choices"][0]["logprobs"]["content"]] for c in chunks]
    assert carried == [[-1.0, -2.0, -3.0], [-4.0], [-5.0]]
    assert [c["choices"][0]["delta"] for c in chunks] == [{"content": "猫"}, {"content": " ok"}, {}]


def test_logprobs_follow_the_raw_reply_when_reasoning_is_split(reference: Generator) -> None:
    """A thinking template's split: each token's entry rides on the chunk carrying its text,
    reasoning or answer; tokens the splitter holds back (tags) ride on the next one."""
    pieces = ["<th", "ink>", "I plan", "</think>", "\nThe", " answer", ""]
    shape = ChatShape(
        MODEL, reasoning=ReasoningSplitter(), logprobs=ChatLogprobs(TokenNames(reference.tokenizer))
    )
    chunks = [
        c
        for i, piece in enumerate(pieces)
        for c in shape.token(
            TokenEvent(100 + i, piece, i, 0.0, "", -0.5 - i, (TokenLogprob(3, -0.1),))
        )
    ]
    chunks += [*shape.held(), shape.final("stop")]
    carried = [
        (item["logprob"], c["choices"][0]["delta"])
        for c in chunks
        if c["choices"][0]["logprobs"]
        for item in c["choices"][0]["logprobs"]["content"]
    ]
    assert [lp for lp, _ in carried] == [-0.5 - i for i in range(len(pieces))]
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert {"reasoning_content": "I plan"} in deltas and deltas[-1] == {}
    first = next(c for c in chunks if c["choices"][0]["logprobs"])
    assert first["choices"][0]["delta"] == {"reasoning_content": "I plan"}
    assert len(first["choices"][0]["logprobs"]["content"]) == 3  # "<th", "ink>", "I plan"
    item = first["choices"][0]["logprobs"]["content"][0]
    assert item["top_logprobs"][0]["logprob"] == -0.1 and item["bytes"]


def test_completion_logprobs_legacy_shape(served: Served, reference: Generator) -> None:
    expected = reference.generate(PROMPT, max_new_tokens=6, ignore_eos=True, logprobs=2)
    assert expected.logprobs is not None
    reply = served.client().completions.create(
        model=MODEL, prompt=PROMPT, max_tokens=6, temperature=0, logprobs=2,
        extra_body={"ignore_eos": True},
    )  # fmt: skip
    choice = reply.choices[0]
    logprobs = choice.logprobs
    assert logprobs is not None and logprobs.tokens is not None
    assert logprobs.token_logprobs is not None and logprobs.top_logprobs is not None
    assert len(logprobs.tokens) == 6 and choice.text == expected.text
    for k, entry in enumerate(expected.logprobs):
        assert logprobs.tokens[k] == _token_text(reference, entry.token_id)[0]
        value = logprobs.token_logprobs[k]
        assert entry.logprob is not None and abs(value - entry.logprob) < TOLERANCE
        top = logprobs.top_logprobs[k]
        assert len(top) == 2 and max(top.values()) == value  # greedy: lm-eval's is_greedy
    assert logprobs.text_offset is not None
    for token, offset in zip(logprobs.tokens, logprobs.text_offset, strict=True):
        assert choice.text[offset:].startswith(token)


@pytest.mark.parametrize("max_tokens", [0, 1])
def test_echo_scores_the_prompt_as_a_full_pass(
    demo_bundle_int8: Path, reference: Generator, max_tokens: int
) -> None:
    """What lm-eval's local-completions sends for loglikelihood, on the standard graph: the
    prompt's logprobs sum to what one full pass of model.onnx gives (onnxruntime directly)."""
    ids = reference.encode(PROMPT)
    expected = prompt_logprobs(demo_bundle_int8, ids)
    with running_server(demo_bundle_int8, slots=1, fused_graph=False) as server:
        reply = server.client().completions.create(
            model=MODEL, prompt=[ids], max_tokens=max_tokens, temperature=0, echo=True,
            logprobs=1,
        )  # fmt: skip
    choice = reply.choices[0]
    logprobs = choice.logprobs
    assert logprobs is not None and logprobs.token_logprobs is not None
    assert logprobs.top_logprobs is not None and logprobs.tokens is not None
    values = logprobs.token_logprobs
    assert len(values) == len(ids) + max_tokens and values[0] is None
    assert logprobs.top_logprobs[0] is None
    assert math.isclose(sum(values[1 : len(ids)]), sum(expected), abs_tol=TOLERANCE * len(ids))
    assert choice.text.startswith(reference.tokenizer.decode(ids))
    assert reply.usage is not None and reply.usage.completion_tokens == max_tokens
    if max_tokens == 0:
        assert choice.finish_reason == "length" and choice.text == reference.tokenizer.decode(ids)


def test_echo_logprobs_stream_and_fused_graph(served: Served, demo_bundle_int8: Path) -> None:
    """On the fused graph (prompt run a token at a time), streamed: the echo chunk carries the
    prompt's logprobs, within the graphs' tolerance of the standard graph's full pass."""
    ids = served.state.engine.generator.encode(PROMPT)  # type: ignore[union-attr]
    expected = prompt_logprobs(demo_bundle_int8, ids)
    stream = served.client().completions.create(
        model=MODEL, prompt=PROMPT, max_tokens=2, temperature=0, echo=True, logprobs=3, stream=True
    )
    chunks = [c.choices[0] for c in stream if c.choices]
    first = chunks[0].logprobs
    assert chunks[0].text == PROMPT and first is not None and first.token_logprobs is not None
    assert first.token_logprobs[0] is None and len(first.token_logprobs) == len(ids)
    assert math.isclose(sum(first.token_logprobs[1:]), sum(expected), abs_tol=0.05)
    generated = [t for c in chunks[1:] if c.logprobs for t in c.logprobs.token_logprobs or []]
    assert len(generated) == 2 and all(v is not None and v <= 0 for v in generated)
    offsets = [o for c in chunks if c.logprobs for o in c.logprobs.text_offset or []]
    assert offsets == sorted(offsets) and offsets[len(ids)] == len(PROMPT)


def test_smollm2_prompt_logprobs_against_a_full_pass(smollm2_int8: Path) -> None:
    """SmolLM2-135M-Instruct (49k vocabulary, its own tokenizer) on the standard graph."""
    with running_server(smollm2_int8, slots=1, fused_graph=False) as server:
        ids = server.state.engine.generator.encode(PROMPT)  # type: ignore[union-attr]
        reply = server.client().completions.create(
            model=MODEL, prompt=PROMPT, max_tokens=1, temperature=0, echo=True, logprobs=1
        )
    logprobs = reply.choices[0].logprobs
    assert logprobs is not None and logprobs.token_logprobs is not None
    values = logprobs.token_logprobs[: len(ids)]
    expected = prompt_logprobs(smollm2_int8, ids)
    assert values[0] is None and len(logprobs.token_logprobs) == len(ids) + 1
    assert all(abs(v - e) < TOLERANCE for v, e in zip(values[1:], expected, strict=True))
    assert math.isclose(sum(values[1:]), sum(expected), abs_tol=TOLERANCE * len(ids))


def _error(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    error: dict[str, Any] = response.json()["error"]
    return error


@pytest.mark.parametrize(
    ("route", "change", "param"),
    [
        ("/v1/chat/completions", {"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ("/v1/chat/completions", {"top_logprobs": 2}, "top_logprobs"),
        ("/v1/chat/completions", {"logprobs": True, "top_logprobs": -1}, "top_logprobs"),
        ("/v1/chat/completions", {"logprobs": 3}, "logprobs"),
        ("/v1/completions", {"logprobs": 21}, "logprobs"),
        ("/v1/completions", {"logprobs": True}, "logprobs"),
        ("/v1/completions", {"max_tokens": 0}, "max_tokens"),
    ],
)
def test_bad_logprobs_fields_are_400_naming_the_field(
    served: Served, route: str, change: dict[str, Any], param: str
) -> None:
    base: dict[str, Any] = (
        {"model": MODEL, "messages": MESSAGES}
        if route.endswith("chat/completions")
        else {"model": MODEL, "prompt": PROMPT}
    )
    with served.http() as http:
        error = _error(http.post(route, json={**base, **change}))
    assert error["param"] == param and error["message"]
