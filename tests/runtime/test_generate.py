"""The Python API on the demo bundles: streaming, statistics, stops, options, cancellation, chat."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from edge_sdk import GenerationError
from edge_sdk.runtime import GenerationResult, Generator, TokenEvent, load

PROMPT = "Once upon a time"


@pytest.fixture(scope="module")
def greedy(gen_fp32: Generator) -> GenerationResult:
    """The greedy story after PROMPT (the demo model ends it with <|endoftext|>)."""
    return gen_fp32.generate(PROMPT, max_new_tokens=200)


def test_stream_yields_events_and_a_result(gen_fp32: Generator, greedy: GenerationResult) -> None:
    stream = gen_fp32.stream(PROMPT, max_new_tokens=20)
    events = list(stream)
    assert all(isinstance(e, TokenEvent) for e in events)
    assert [e.index for e in events] == list(range(20))
    assert [e.token_id for e in events] == greedy.token_ids[:20]
    times = [e.time for e in events]
    assert times == sorted(times) and times[0] > 0
    assert stream.result is not None
    assert stream.result.text == "".join(e.text for e in events)
    assert greedy.text.startswith(stream.result.text)


def test_generate_reports_statistics(gen_fp32: Generator, greedy: GenerationResult) -> None:
    stats = greedy.stats
    cfg = gen_fp32.bundle.config
    assert stats.prompt_tokens == len(gen_fp32.encode(PROMPT))
    assert stats.new_tokens == len(greedy.token_ids) > 10
    assert 0 < stats.time_to_first_token_s < stats.total_s
    assert stats.decode_tokens_per_s > 0 and stats.prefill_tokens_per_s > 0
    assert 0 < stats.token_latency_p50_s <= stats.token_latency_p95_s
    assert stats.stop_reason == greedy.stop_reason
    assert stats.context_tokens == stats.prompt_tokens + stats.new_tokens
    # key and value per layer, float32, the whole context; the fused graph's cache is written in
    # place, the standard graph's needs a second (ping-pong) copy
    copies = 1 if gen_fp32.backend.fused else 2  # type: ignore[attr-defined]
    assert gen_fp32.backend.fused  # type: ignore[attr-defined]  # the demo bundles have the fused graph
    expected_cache = (
        copies * 2 * cfg.num_layers * cfg.num_kv_heads * cfg.head_dim * 4 * gen_fp32.max_context
    )
    assert stats.kv_cache_bytes == gen_fp32.kv_cache_bytes == expected_cache
    assert "CPUExecutionProvider" in stats.backend
    assert set(stats.to_dict()) >= {
        "prompt_tokens",
        "new_tokens",
        "time_to_first_token_s",
        "decode_tokens_per_s",
        "token_latency_p50_s",
        "token_latency_p95_s",
        "stop_reason",
    }


def test_stops_at_the_bundles_eos(gen_fp32: Generator, greedy: GenerationResult) -> None:
    assert greedy.stop_reason == "eos"
    assert greedy.token_ids[-1] in gen_fp32.eos_token_ids
    assert "<|endoftext|>" not in greedy.text
    assert greedy.text == gen_fp32.tokenizer.decode(greedy.token_ids)
    longer = gen_fp32.generate(PROMPT, max_new_tokens=len(greedy.token_ids) + 5, ignore_eos=True)
    assert longer.stop_reason == "max_new_tokens"
    assert longer.token_ids[: len(greedy.token_ids)] == greedy.token_ids


def test_max_new_tokens(gen_fp32: Generator) -> None:
    result = gen_fp32.generate(PROMPT, max_new_tokens=7)
    assert result.stop_reason == "max_new_tokens" and len(result.token_ids) == 7


def test_context_limit_stops_with_length(demo_bundle_fp32: Path) -> None:
    with load(demo_bundle_fp32, "ort-cpu", max_context=24) as gen:
        prompt = gen.encode(PROMPT)
        result = gen.generate(prompt, max_new_tokens=100, ignore_eos=True)
        assert result.stop_reason == "length"
        assert len(prompt) + len(result.token_ids) == 24
        assert gen.kv_cache_bytes == 2 * 4 * 2 * 32 * 4 * 24  # one in-place buffer (fused graph)
        with pytest.raises(GenerationError, match="context holds 24"):
            gen.generate(list(range(1, 25)), max_new_tokens=1)


def test_bad_inputs_raise_clear_errors(gen_fp32: Generator) -> None:
    with pytest.raises(GenerationError, match="context holds 512"):
        gen_fp32.generate("the dog ran. " * 300)
    with pytest.raises(GenerationError, match="empty"):
        gen_fp32.generate("")
    with pytest.raises(GenerationError, match="empty"):
        gen_fp32.generate([])
    with pytest.raises(GenerationError, match="max_new_tokens"):
        gen_fp32.generate(PROMPT, max_new_tokens=-1)
    with pytest.raises(GenerationError, match="max_new_tokens"):
        gen_fp32.generate(PROMPT, max_new_tokens=0)
    with pytest.raises(GenerationError, match="temperature"):
        gen_fp32.generate(PROMPT, temperature=-1)
    with pytest.raises(GenerationError, match="top_p"):
        gen_fp32.generate(PROMPT, top_p=0)
    with pytest.raises(GenerationError, match="vocabulary"):
        gen_fp32.generate([1, 999999])
    with pytest.raises(GenerationError, match="max_context"):
        Generator(gen_fp32.bundle, gen_fp32.backend, gen_fp32.tokenizer, max_context=10**6)
    # the generator still works after each error
    assert gen_fp32.generate(PROMPT, max_new_tokens=3).stop_reason == "max_new_tokens"


def _span_stop(gen: Generator, result: GenerationResult) -> str:
    """A stop string made of the end of one token and the whole next one."""
    pieces = [gen.tokenizer.decode([t]) for t in result.token_ids]
    for i in range(5, len(pieces) - 1):
        if len(pieces[i]) >= 3 and len(pieces[i + 1]) >= 3:
            return pieces[i][1:] + pieces[i + 1]
    raise AssertionError("no two long tokens in a row")


def test_stop_string_spanning_tokens_is_cut(gen_fp32: Generator, greedy: GenerationResult) -> None:
    stop = _span_stop(gen_fp32, greedy)
    assert len(gen_fp32.encode(stop)) >= 2
    events = list(stream := gen_fp32.stream(PROMPT, max_new_tokens=200, stop=[stop, "zzzz"]))
    result = stream.result
    assert result is not None and result.stop_reason == "stop"
    assert result.text == greedy.text[: greedy.text.index(stop)]
    assert stop not in "".join(e.text for e in events)
    assert "".join(e.text for e in events) == result.text
    earliest = gen_fp32.generate(PROMPT, max_new_tokens=200, stop=[stop, greedy.text[5:9]])
    assert earliest.text == greedy.text[:5]
    never = gen_fp32.generate(PROMPT, max_new_tokens=200, stop="qqqq")
    assert never.text == greedy.text and never.stop_reason == "eos"


def test_seed_makes_sampling_repeatable(gen_fp32: Generator, greedy: GenerationResult) -> None:
    options = {"max_new_tokens": 40, "temperature": 1.0, "top_k": 50, "top_p": 0.95, "seed": 7}
    first = gen_fp32.generate(PROMPT, **options)
    again = gen_fp32.generate(PROMPT, **options)
    other = gen_fp32.generate(PROMPT, **{**options, "seed": 8})
    assert first.token_ids == again.token_ids
    assert first.token_ids != other.token_ids
    assert first.token_ids != greedy.token_ids[:40]


def test_degenerate_sampling_is_greedy(gen_fp32: Generator, greedy: GenerationResult) -> None:
    want = greedy.token_ids[:30]
    assert (
        gen_fp32.generate(PROMPT, max_new_tokens=30, temperature=1.5, top_k=1, seed=1).token_ids
        == want
    )
    assert (
        gen_fp32.generate(PROMPT, max_new_tokens=30, temperature=1.5, top_p=1e-9, seed=1).token_ids
        == want
    )


def test_repetition_penalty_changes_greedy_output(
    gen_fp32: Generator, greedy: GenerationResult
) -> None:
    result = gen_fp32.generate(PROMPT, max_new_tokens=60, repetition_penalty=1.8)
    assert result.token_ids != greedy.token_ids[:60]
    repeats = len(result.token_ids) - len(set(result.token_ids))
    baseline = greedy.token_ids[: len(result.token_ids)]
    assert repeats < len(baseline) - len(set(baseline))


def test_break_out_then_reuse(gen_fp32: Generator, greedy: GenerationResult) -> None:
    for event in gen_fp32.stream(PROMPT, max_new_tokens=200):
        if event.index == 4:
            break
    assert gen_fp32.generate(PROMPT, max_new_tokens=200).token_ids == greedy.token_ids


def test_callback_form_and_cancel(gen_fp32: Generator, greedy: GenerationResult) -> None:
    seen: list[TokenEvent] = []
    result = gen_fp32.generate(PROMPT, max_new_tokens=200, on_token=seen.append)
    assert [e.token_id for e in seen] == result.token_ids == greedy.token_ids
    stopped = gen_fp32.generate(
        PROMPT, max_new_tokens=200, on_token=lambda e: e.index < 5
    )  # False at the 6th token
    assert stopped.stop_reason == "cancelled" and stopped.token_ids == greedy.token_ids[:6]
    assert stopped.stats.stop_reason == "cancelled"


def test_cancel_from_another_thread(gen_fp32: Generator, greedy: GenerationResult) -> None:
    stream = gen_fp32.stream(PROMPT, max_new_tokens=200, ignore_eos=True)
    got: list[int] = []
    for event in stream:
        got.append(event.token_id)
        if event.index == 3:
            worker = threading.Thread(target=gen_fp32.cancel)
            worker.start()
            worker.join()
    assert stream.result is not None and stream.result.stop_reason == "cancelled"
    assert got == greedy.token_ids[:4]
    assert gen_fp32.generate(PROMPT, max_new_tokens=200).token_ids == greedy.token_ids


def test_a_new_stream_ends_the_old_one(gen_fp32: Generator, greedy: GenerationResult) -> None:
    old = gen_fp32.stream(PROMPT, max_new_tokens=200)
    first = [next(old).token_id for _ in range(3)]
    new = gen_fp32.generate(PROMPT, max_new_tokens=200)
    assert list(old) == [] and old.result is not None and old.result.stop_reason == "cancelled"
    assert first == greedy.token_ids[:3] and new.token_ids == greedy.token_ids


def test_chat_keeps_the_conversation_in_the_cache(gen_fp32: Generator) -> None:
    chat = gen_fp32.chat(template=False)
    turn1 = chat.send("Tom had a red ball.", max_new_tokens=12, ignore_eos=True).run()
    ids1 = gen_fp32.encode("Tom had a red ball.")
    ids2 = gen_fp32.encode(" Then", add_special_tokens=False)
    turn2 = chat.send(ids2, max_new_tokens=12, ignore_eos=True).run()
    assert turn2.stats.prompt_tokens == len(ids2)  # only the new text ran, not the history
    assert chat.context_tokens == len(ids1) + 12 + len(ids2) + 12
    fresh = gen_fp32.generate(ids1 + turn1.token_ids + ids2, max_new_tokens=12, ignore_eos=True)
    assert turn2.token_ids == fresh.token_ids


def test_cache_is_allocated_once_and_reused(gen_fp32: Generator) -> None:
    gen_fp32.generate(PROMPT, max_new_tokens=3)
    cache = gen_fp32.backend.cache  # type: ignore[attr-defined]
    pointers = set(cache.past_pointers) | set(cache.present_pointers)
    result = gen_fp32.generate(PROMPT, max_new_tokens=50, ignore_eos=True)
    assert gen_fp32.backend.cache is cache  # type: ignore[attr-defined]
    assert set(cache.past_pointers) | set(cache.present_pointers) == pointers
    assert cache.length == result.stats.context_tokens - 1  # the last token is not run


def test_int8_bundle_streams_with_its_session_config(gen_int8: Generator) -> None:
    assert gen_int8.bundle.precision == "int8"
    options = gen_int8.backend.session_options()  # type: ignore[attr-defined]
    key = "session.qdq_matmulnbits_accuracy_level"
    assert (
        options.get_session_config_entry(key)
        == gen_int8.bundle.manifest["onnxruntime"]["session_config"][key]
    )
    result = gen_int8.generate(PROMPT, max_new_tokens=30)
    assert result.text and result.stats.new_tokens == len(result.token_ids)


def test_threads_are_configurable(demo_bundle_int8: Path) -> None:
    with load(demo_bundle_int8, "ort-cpu", threads=1, verify=False) as gen:
        opts = gen.backend.session_options()  # type: ignore[attr-defined]
        assert opts.intra_op_num_threads == 1
        assert gen.generate(PROMPT, max_new_tokens=5).stats.new_tokens == 5
    with pytest.raises(GenerationError, match="threads"):
        load(demo_bundle_int8, threads=0)


def test_sampler_rules() -> None:
    from edge_sdk.runtime import Sampler, SamplingOptions

    logits = np.log(np.array([0.5, 0.3, 0.15, 0.05], dtype=np.float32))
    top_p = Sampler(SamplingOptions(temperature=1.0, top_p=0.6, seed=0), 4)
    assert {top_p(logits) for _ in range(200)} == {0, 1}
    wide = np.random.default_rng(0).normal(size=5000).astype(np.float32) * 2
    probs = np.exp(wide - wide.max()) / np.exp(wide - wide.max()).sum()
    order = np.argsort(-probs)
    nucleus = set(order[: int(np.searchsorted(np.cumsum(probs[order]), 0.9)) + 1].tolist())
    large = Sampler(SamplingOptions(temperature=1.0, top_p=0.9, seed=0), 5000)  # partitioned
    drawn = {large(wide) for _ in range(2000)}
    assert drawn <= nucleus and len(drawn) > 100
    top_k = Sampler(SamplingOptions(temperature=1.0, top_k=3, seed=0), 4)
    assert {top_k(logits) for _ in range(300)} == {0, 1, 2}
    plain = Sampler(SamplingOptions(temperature=2.0, seed=0), 4)  # no top-k/p: no sort
    drawn = np.bincount([plain(logits) for _ in range(4000)], minlength=4) / 4000
    expected = np.exp(logits / 2.0) / np.exp(logits / 2.0).sum()
    assert np.abs(drawn - expected).max() < 0.03, (drawn, expected)
    penalty = Sampler(SamplingOptions(repetition_penalty=2.0), 3)
    penalty.observe([0, 1])
    assert penalty(np.array([3.0, -2.0, 2.0], dtype=np.float32)) == 2  # 3/2 < 2


def test_a_replaced_conversation_says_so(gen_fp32: Generator) -> None:
    chat = gen_fp32.chat()
    chat.send("Tom had a red ball.", max_new_tokens=3).run()
    gen_fp32.generate(PROMPT, max_new_tokens=3)
    with pytest.raises(GenerationError, match=r"new one with .chat"):
        chat.send(" Then", max_new_tokens=3)
    fresh = gen_fp32.chat()
    assert fresh.send("Tom had a red ball.", max_new_tokens=3).run().stats.new_tokens == 3
