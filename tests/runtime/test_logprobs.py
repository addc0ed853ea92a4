"""Log probabilities from the Python API: the model's own log-softmax, checked against a full
pass of the standard graph run through onnxruntime directly (tests/runtime/logprob_reference.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from edge_sdk import GenerationError
from edge_sdk.runtime import GenerationOptions, Generator, load
from edge_sdk.runtime.engine import Engine
from edge_sdk.runtime.logprobs import TokenLogprobs
from tests.runtime.logprob_reference import full_forward_log_softmax, prompt_logprobs

PROMPT = "Once upon a time, there was a little dog"
TOLERANCE = 1e-4
#: The two int8 graphs' summed prompt logprobs on the demo (they hold differently quantized
#: weights since model.onnx stores TensorRT's per-channel int8): 0.07 apart, measured.
ACROSS_GRAPHS_SUM = 0.2


@pytest.fixture(scope="module")
def gen_standard(demo_bundle_int8: Path) -> Iterator[Generator]:
    with load(demo_bundle_int8, "ort-cpu", threads=1, fused_graph=False) as generator:
        assert not generator.backend.fused  # type: ignore[attr-defined]
        yield generator


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    rows = logits.astype(np.float64)
    return rows - rows.max() - np.log(np.exp(rows - rows.max()).sum())


def _check_top(entry: TokenLogprobs, row: np.ndarray, k: int) -> None:
    """``entry.top`` holds the k most likely ids of ``row`` (a log-softmax row), sorted."""
    values = [t.logprob for t in entry.top]
    assert len(entry.top) == k and values == sorted(values, reverse=True)
    np.testing.assert_allclose(values, np.sort(row)[::-1][:k], atol=TOLERANCE)
    for t in entry.top:
        assert abs(t.logprob - row[t.token_id]) < TOLERANCE


def test_token_logprobs_are_the_log_softmax_of_the_backends_logits(gen_int8: Generator) -> None:
    """On the fused graph: each logprob is log_softmax of the logits the backend itself returns
    for that prefix (run here again, token by token)."""
    # cache_prompt=False: a prefix another test left in the cache would come from decode steps,
    # which the 8-bit kernel rounds differently from the prefill run here (runtime/README.md)
    events = list(
        gen_int8.stream(PROMPT, max_new_tokens=8, ignore_eos=True, logprobs=5, cache_prompt=False)
    )
    prompt = gen_int8.encode(PROMPT)
    backend = gen_int8.backend
    for k, event in enumerate(events):
        backend.allocate(gen_int8.max_context)
        row = _log_softmax(backend.forward(np.asarray(prompt + [e.token_id for e in events[:k]])))
        assert event.logprob is not None and abs(event.logprob - row[event.token_id]) < TOLERANCE
        entry = TokenLogprobs(event.token_id, event.logprob, event.top_logprobs)
        _check_top(entry, row, 5)
        assert entry.top[0].token_id == event.token_id  # greedy: the most likely one
    backend.reset()


def test_token_logprobs_match_a_full_pass_of_the_standard_graph(
    gen_standard: Generator, demo_bundle_int8: Path
) -> None:
    result = gen_standard.generate(PROMPT, max_new_tokens=8, ignore_eos=True, logprobs=5)
    prompt = gen_standard.encode(PROMPT)
    rows = full_forward_log_softmax(demo_bundle_int8, [*prompt, *result.token_ids])
    assert result.logprobs is not None and len(result.logprobs) == 8
    for k, entry in enumerate(result.logprobs):
        row = rows[len(prompt) - 1 + k]
        assert entry.logprob is not None and abs(entry.logprob - row[entry.token_id]) < TOLERANCE
        _check_top(entry, row, 5)
        assert entry.top[0].token_id == entry.token_id


def test_logprobs_are_raw_under_sampling_and_off_by_default(
    gen_standard: Generator, demo_bundle_int8: Path
) -> None:
    options = GenerationOptions(
        max_new_tokens=6, temperature=1.8, top_k=40, repetition_penalty=1.3, seed=5, logprobs=0
    )
    result = gen_standard.generate(PROMPT, options=options, ignore_eos=True)
    prompt = gen_standard.encode(PROMPT)
    rows = full_forward_log_softmax(demo_bundle_int8, [*prompt, *result.token_ids])
    assert result.logprobs is not None
    for k, entry in enumerate(result.logprobs):  # not the tempered, penalized distribution
        assert entry.top == ()
        assert entry.logprob is not None
        assert abs(entry.logprob - rows[len(prompt) - 1 + k, entry.token_id]) < TOLERANCE
    plain = gen_standard.generate(PROMPT, max_new_tokens=2)
    assert plain.logprobs is None and plain.prompt_logprobs is None
    assert all(e.logprob is None and e.top_logprobs == () for e in gen_standard.stream(PROMPT))


def test_prompt_logprobs_match_a_full_pass_on_both_graphs(
    gen_standard: Generator, gen_int8: Generator, demo_bundle_int8: Path
) -> None:
    prompt = gen_standard.encode(PROMPT)
    sums = []
    for gen, fused in ((gen_standard, False), (gen_int8, True)):
        # each graph against one full pass of itself: the int8 graphs hold differently
        # quantized weights (model.onnx per channel, TensorRT's form; the fused one in blocks)
        rows = full_forward_log_softmax(demo_bundle_int8, prompt, fused)
        expected = prompt_logprobs(demo_bundle_int8, prompt, fused)
        tolerance = TOLERANCE
        result = gen.generate(PROMPT, max_new_tokens=0, prompt_logprobs=3)
        assert result.token_ids == [] and result.stop_reason == "max_new_tokens"
        entries = result.prompt_logprobs
        assert entries is not None and [e.token_id for e in entries] == prompt
        assert entries[0].logprob is None and entries[0].top == ()
        got = [e.logprob for e in entries[1:]]
        np.testing.assert_allclose(got, expected, atol=tolerance)  # type: ignore[arg-type]
        sums.append(sum(got))  # type: ignore[arg-type]
        for j, entry in enumerate(entries[1:]):
            assert [t.logprob for t in entry.top] == sorted(
                (t.logprob for t in entry.top), reverse=True
            )
            np.testing.assert_allclose(
                [t.logprob for t in entry.top], np.sort(rows[j])[::-1][:3], atol=tolerance
            )
    assert abs(sums[1] - sums[0]) < ACROSS_GRAPHS_SUM


def test_engine_prompt_logprobs_across_prefill_chunks(
    gen_int8: Generator, demo_bundle_int8: Path
) -> None:
    """A 300-token prompt (two prefill chunks) through the engine: on the standard graph (one
    call per chunk) as the full pass scores it; on the fused slots (a token at a time, beside a
    running request) as the fused generator scores it; generated tokens' logprobs come along."""
    prompt = (gen_int8.encode(PROMPT + ". ") * 40)[:300]
    expected = full_forward_log_softmax(demo_bundle_int8, prompt)
    want = [expected[j, t] for j, t in enumerate(prompt[1:])]
    with Engine(load(demo_bundle_int8, "ort-cpu", threads=1, fused_graph=False)) as engine:
        assert not engine.batched
        standard = engine.submit(prompt, max_new_tokens=0, prompt_logprobs=1).wait(120)
    assert standard.token_ids == [] and standard.stop_reason == "max_new_tokens"
    entries = standard.prompt_logprobs
    assert entries is not None and len(entries) == 300 and entries[0].logprob is None
    np.testing.assert_allclose([e.logprob for e in entries[1:]], want, atol=TOLERANCE)  # type: ignore[arg-type]

    with Engine(load(demo_bundle_int8, "ort-cpu", threads=1), slots=2) as engine:
        assert engine.batched  # the fused graph's slots
        other = engine.submit(PROMPT, max_new_tokens=12, ignore_eos=True)
        scored = engine.submit(prompt, max_new_tokens=2, prompt_logprobs=1, logprobs=2)
        result, plain = scored.wait(120), other.wait(120)
    fused = gen_int8.generate(prompt, max_new_tokens=2, prompt_logprobs=1, logprobs=2)
    assert result.token_ids == fused.token_ids
    assert result.prompt_logprobs is not None and fused.prompt_logprobs is not None
    assert result.logprobs is not None and fused.logprobs is not None
    for got, same in zip(
        result.prompt_logprobs + result.logprobs,
        fused.prompt_logprobs + fused.logprobs,
        strict=True,
    ):
        assert got.token_id == same.token_id and [t.token_id for t in got.top] == [
            t.token_id for t in same.top
        ]
        if same.logprob is None:
            assert got.logprob is None
        else:
            assert got.logprob is not None and abs(got.logprob - same.logprob) < TOLERANCE
    assert plain.logprobs is None and len(plain.token_ids) == 12


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"logprobs": 21}, "logprobs must be between 0 and 20, got 21"),
        ({"logprobs": -1}, "logprobs must be between 0 and 20"),
        ({"logprobs": True}, "logprobs must be an integer or None"),
        ({"prompt_logprobs": 21}, "prompt_logprobs must be between 0 and 20"),
        ({"max_new_tokens": 0}, "0 only with prompt_logprobs"),
    ],
)
def test_bad_logprobs_options(changes: dict[str, object], message: str) -> None:
    with pytest.raises(GenerationError, match=message):
        GenerationOptions(**changes)  # type: ignore[arg-type]
    assert GenerationOptions(max_new_tokens=0, prompt_logprobs=0).max_new_tokens == 0
    assert GenerationOptions(logprobs=20).logprobs == 20
