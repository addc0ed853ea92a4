"""The prompt cache through the real openai client: a chat's second turn reuses the first's
positions, reports them in ``usage.prompt_tokens_details.cached_tokens`` and ``/metrics``, and
answers with the same greedy text as a server without the cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.serve.served import MODEL, running_server

SYSTEM = "You tell short stories about a girl named Mia, her red ball and her little dog."


def _two_turns(bundle: Path, prefix_cache: bool) -> tuple[list[Any], str]:
    with running_server(bundle, slots=2, prefix_cache=prefix_cache) as server:
        client = server.client()
        messages: list[Any] = [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": "Once upon a time"},
        ]
        ask = dict(model=MODEL, max_tokens=12, temperature=0)
        first = client.chat.completions.create(messages=messages, **ask)  # type: ignore[call-overload]
        messages += [
            {"role": "assistant", "content": first.choices[0].message.content},
            {"role": "user", "content": "What did the dog do?"},
        ]
        second = client.chat.completions.create(messages=messages, **ask)  # type: ignore[call-overload]
        chunks = list(
            client.chat.completions.create(
                messages=messages, stream=True, stream_options={"include_usage": True}, **ask
            )  # type: ignore[call-overload]
        )
        opted_out = client.chat.completions.create(
            messages=messages, extra_body={"cache_prompt": False}, **ask
        )  # type: ignore[call-overload]
        return [first, second, chunks, opted_out], server.metrics_text()


def test_a_chats_second_turn_reuses_the_first(demo_bundle_int8: Path) -> None:
    (first, second, chunks, opted_out), metrics = _two_turns(demo_bundle_int8, True)
    (base_first, base_second, _, _), base_metrics = _two_turns(demo_bundle_int8, False)
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    cached = second.usage.prompt_tokens_details.cached_tokens
    assert 0 < cached < second.usage.prompt_tokens
    streamed = chunks[-1].usage
    assert streamed.prompt_tokens_details.cached_tokens == streamed.prompt_tokens - 1  # repeated
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        second.choices[0].message.content
    )
    assert opted_out.usage.prompt_tokens_details.cached_tokens == 0
    assert base_second.usage.prompt_tokens_details.cached_tokens == 0
    assert first.choices[0].message.content == base_first.choices[0].message.content
    assert second.choices[0].message.content == base_second.choices[0].message.content
    assert opted_out.choices[0].message.content == second.choices[0].message.content
    reused = _metric(metrics, "edge_serve_prompt_tokens_cached_total")
    assert reused == cached + streamed.prompt_tokens - 1
    total = _metric(metrics, "edge_serve_prompt_tokens_total")
    assert total == first.usage.prompt_tokens + 3 * second.usage.prompt_tokens
    assert _metric(base_metrics, "edge_serve_prompt_tokens_cached_total") == 0


def _metric(text: str, name: str) -> float:
    return next(
        float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")
    )
