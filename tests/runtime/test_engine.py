"""The continuous-batching engine on the demo bundles: real onnxruntime sessions, real tokens."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_sdk.errors import GenerationError
from edge_sdk.runtime import Generator, load
from edge_sdk.runtime.engine import (
    Engine,
    EngineClosedError,
    QueueFullError,
    StepRecord,
)

PROMPTS = [
    "Once upon a time",
    "The dog ran to the",
    "Mia had a pink ball. One day, she went to",
    "Tom",
    "The sun was hot and the birds sang. A little cat",
    "Ben and Lily",
    "She looked at the sky and",
    "One day",
]


@pytest.fixture(scope="module")
def reference(demo_bundle_int8: Path) -> Iterator[Generator]:
    with load(demo_bundle_int8, "ort-cpu", threads=2) as gen:
        yield gen


def _engine(bundle: Path, slots: int = 4, **load_options: object) -> Engine:
    return Engine(load(bundle, "ort-cpu", threads=2, **load_options), slots=slots)  # type: ignore[arg-type]


def test_concurrent_requests_get_their_single_request_greedy_output(
    demo_bundle_int8: Path, reference: Generator
) -> None:
    lengths = [24, 7, 30, 12, 5, 18, 9, 27]  # different lengths: slots free and refill mid-way
    want = [reference.generate(p, max_new_tokens=n) for p, n in zip(PROMPTS, lengths, strict=True)]
    with _engine(demo_bundle_int8, slots=4) as engine:
        assert engine.batched and engine.slots == 4
        steps: list[StepRecord] = []
        engine.add_step_listener(steps.append)
        requests = [
            engine.submit(p, max_new_tokens=n) for p, n in zip(PROMPTS, lengths, strict=True)
        ]
        got = [r.wait(timeout=60) for r in requests]
    for g, w in zip(got, want, strict=True):
        assert g.token_ids == w.token_ids and g.text == w.text and g.stop_reason == w.stop_reason
    decode_batches = [len(s.tokens) for s in steps if s.kind == "decode"]
    assert max(decode_batches) == 4  # four requests shared one model call
    assert sum(sum(s.tokens.values()) for s in steps if s.kind == "prefill") == sum(
        len(r.prompt_ids) - g.stats.cached_tokens  # a slot's BOS is reused (the prompt cache)
        for r, g in zip(requests, got, strict=True)
    )


def test_sampling_stops_and_seeds_stay_per_request(
    demo_bundle_int8: Path, reference: Generator
) -> None:
    options = [
        dict(temperature=0.9, top_p=0.9, seed=7, max_new_tokens=20),
        dict(stop=[" the"], max_new_tokens=40),
        dict(temperature=1.2, seed=3, max_new_tokens=16, ignore_eos=True),
    ]
    want = [reference.generate(PROMPTS[i], **o) for i, o in enumerate(options)]  # type: ignore[arg-type]
    with _engine(demo_bundle_int8, slots=3) as engine:
        got = [engine.submit(PROMPTS[i], **o) for i, o in enumerate(options)]
        results = [r.wait(timeout=60) for r in got]
    for g, w in zip(results, want, strict=True):
        assert (g.token_ids, g.text, g.stop_reason) == (w.token_ids, w.text, w.stop_reason)
    assert results[1].stop_reason == "stop" and " the" not in results[1].text


def test_iterating_a_request_streams_its_tokens(demo_bundle_int8: Path) -> None:
    with _engine(demo_bundle_int8, slots=2) as engine:
        request = engine.submit(PROMPTS[0], max_new_tokens=10, ignore_eos=True)
        events = list(request)
        assert [e.index for e in events] == list(range(10))
        assert "".join(e.text for e in events) == request.wait().text
        assert request.result is not None and request.result.stats.new_tokens == 10


def test_a_cancelled_request_frees_its_slot(demo_bundle_int8: Path) -> None:
    with _engine(demo_bundle_int8, slots=1) as engine:
        started = threading.Event()

        def on_event(item: object) -> None:
            started.set()

        long = engine.submit(PROMPTS[0], max_new_tokens=400, ignore_eos=True, on_event=on_event)
        queued = engine.submit(PROMPTS[1], max_new_tokens=5)
        assert started.wait(30)
        long.cancel()
        assert long.wait(30).stop_reason == "cancelled"
        assert long.result is not None and long.result.stats.new_tokens < 400
        assert queued.wait(30).stats.new_tokens >= 1  # it got the freed slot
        assert engine.running == 0 and engine.kv_cache_used == 0


def test_queue_full_closed_and_too_long(demo_bundle_int8: Path) -> None:
    engine = Engine(
        load(demo_bundle_int8, "ort-cpu", threads=2, max_context=64), slots=1, max_queue=1
    )
    try:
        with pytest.raises(GenerationError, match="context holds 64"):
            engine.submit("Once upon a time " * 40)
        with pytest.raises(GenerationError, match="max_new_tokens"):
            engine.submit(PROMPTS[0], max_new_tokens=0)
        first = engine.submit(PROMPTS[0], max_new_tokens=200, ignore_eos=True)
        second = engine.submit(PROMPTS[1], max_new_tokens=200, ignore_eos=True)
        with pytest.raises(QueueFullError):
            engine.submit(PROMPTS[2], max_new_tokens=4)
        first.cancel()
        second.cancel()
        assert first.wait(30).stop_reason == second.wait(30).stop_reason == "cancelled"
        assert first.result is not None and first.result.stats.new_tokens < 200
    finally:
        engine.close()
    with pytest.raises(EngineClosedError):
        engine.submit(PROMPTS[0])


def test_close_drains_running_requests(demo_bundle_int8: Path) -> None:
    engine = _engine(demo_bundle_int8, slots=2)
    requests = [engine.submit(p, max_new_tokens=12, ignore_eos=True) for p in PROMPTS[:3]]
    engine.close(drain=True)
    assert [r.wait(0).stats.new_tokens for r in requests] == [12, 12, 12]


def test_the_standard_graph_falls_back_to_one_slot(
    demo_bundle_int8: Path, reference: Generator
) -> None:
    want = [reference.generate(p, max_new_tokens=8).token_ids for p in PROMPTS[:3]]
    with _engine(demo_bundle_int8, slots=4, fused_graph=False) as engine:
        assert not engine.batched and engine.slots == 1
        got = [
            r.wait(60).token_ids for r in [engine.submit(p, max_new_tokens=8) for p in PROMPTS[:3]]
        ]
    assert got == want
