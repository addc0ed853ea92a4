"""The prompt (prefix) cache: a slot's positions reused by the next prompt that shares them, with
the same greedy output as a full prefill, on both graphs of the demo bundle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_sdk.runtime import load
from edge_sdk.runtime.engine import Engine, StepRecord
from edge_sdk.runtime.kv_cache import KVCache, copy_host
from edge_sdk.runtime.prefix_store import PrefixStore, StoredPrefix

STORY = "Once upon a time there was a little girl named Mia. She had a red ball and a small dog."


def _prompts(engine: Engine) -> tuple[list[list[int]], list[list[int]]]:
    """Two waves of prompts: the first fills the slots; the second extends, repeats, shortens
    and forks them (the second wave is built from the first's outputs too)."""
    tok = engine.tokenizer
    base = tok.encode(STORY)
    first = [
        base + tok.encode(" One day", add_special_tokens=False),
        base + tok.encode(" The dog ran to the", add_special_tokens=False),
        tok.encode("Tom and Ben went to the park."),
    ]
    return first, [
        first[1],  # the same prompt again (the slot holds it and its output: cut back)
        base,  # a prefix of what a slot holds
        base + tok.encode(" The cat sat", add_special_tokens=False),  # a fork of the story
        first[2] + tok.encode(" They played", add_special_tokens=False),
    ]


def _run(engine: Engine, waves: list[list[list[int]]]) -> list[tuple[list[int], int]]:
    """Each wave's prompts run together; (token ids, cached tokens) of each request."""
    out = []
    for wave in waves:
        requests = [engine.submit(ids, max_new_tokens=12, ignore_eos=True) for ids in wave]
        out += [(r.wait(timeout=60).token_ids, r.wait().stats.cached_tokens) for r in requests]
    return out


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "standard"])
def test_engine_reuses_prefixes_with_the_same_greedy_output(
    demo_bundle_int8: Path, fused: bool
) -> None:
    slots = 3 if fused else 1  # the standard graph runs one slot (SingleSlotModel)
    gen = load(demo_bundle_int8, "ort-cpu", threads=2, fused_graph=fused)
    with Engine(gen, slots=slots, prefix_cache=False) as off:
        first, second = _prompts(off)
        continued = (
            first[0]
            + off.submit(first[0], max_new_tokens=12, ignore_eos=True).wait().token_ids[:-1]
        )
        waves = [
            first,
            second,
            [continued + off.tokenizer.encode(" Then", add_special_tokens=False)],
        ]
        want = _run(off, waves)
    steps: list[StepRecord] = []
    with Engine(load(demo_bundle_int8, "ort-cpu", threads=2, fused_graph=fused), slots=slots) as on:
        assert on.batched is fused
        on.add_step_listener(steps.append)
        got = _run(on, waves)
    assert [ids for ids, _ in got] == [ids for ids, _ in want]
    assert all(cached == 0 for _, cached in want)
    cached = [c for _, c in got]
    prompts = [p for wave in waves for p in wave]
    assert all(c < len(p) for c, p in zip(cached, prompts, strict=True))  # one token always runs
    assert sum(cached[3:]) > len(first[0])  # the second wave reused
    prefilled = sum(sum(s.tokens.values()) for s in steps if s.kind == "prefill")
    assert prefilled == sum(len(p) for p in prompts) - sum(cached)


def test_a_request_can_opt_out(demo_bundle_int8: Path) -> None:
    with Engine(load(demo_bundle_int8, "ort-cpu", threads=2), slots=2) as engine:
        prompt = engine.tokenizer.encode(STORY)
        engine.submit(prompt, max_new_tokens=4).wait(timeout=60)
        again = engine.submit(prompt, max_new_tokens=4, cache_prompt=False).wait(timeout=60)
        reused = engine.submit(prompt, max_new_tokens=4).wait(timeout=60)
    assert again.stats.cached_tokens == 0
    assert reused.stats.cached_tokens == len(prompt) - 1
    assert reused.token_ids == again.token_ids


def test_prompt_logprobs_run_the_whole_prompt_despite_the_cache(demo_bundle_int8: Path) -> None:
    """Cached positions give no logits: a request that scores its prompt never reuses them."""
    with load(demo_bundle_int8, "ort-cpu", threads=2) as gen:
        prompt = gen.encode(STORY)
        gen.generate(prompt, max_new_tokens=2)
        scored = gen.generate(prompt, max_new_tokens=0, prompt_logprobs=0)
    with Engine(load(demo_bundle_int8, "ort-cpu", threads=2), slots=2) as engine:
        engine.submit(prompt, max_new_tokens=2).wait(timeout=60)
        engine.submit(prompt, max_new_tokens=2).wait(timeout=60)  # both slots hold it now
        served = engine.submit(prompt, max_new_tokens=0, prompt_logprobs=0).wait(timeout=60)
    for result in (scored, served):
        assert result.stats.cached_tokens == 0
        assert result.prompt_logprobs is not None and len(result.prompt_logprobs) == len(prompt)
    assert [e.logprob for e in served.prompt_logprobs or []] == pytest.approx(
        [e.logprob for e in scored.prompt_logprobs or []], abs=1e-4, nan_ok=True
    )


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "standard"])
def test_generator_stream_reuses_its_cache(demo_bundle_int8: Path, fused: bool) -> None:
    with load(demo_bundle_int8, "ort-cpu", threads=2, fused_graph=fused) as gen:
        story = gen.encode(STORY)
        fork = story[:10] + gen.encode(" a big", add_special_tokens=False)
        first = gen.generate(story, max_new_tokens=8, ignore_eos=True)
        extended = story + first.token_ids[:-1] + gen.encode(" Then", add_special_tokens=False)
        got = [gen.generate(p, max_new_tokens=8, ignore_eos=True) for p in (extended, fork)]
        want = [
            gen.generate(p, max_new_tokens=8, cache_prompt=False, ignore_eos=True)
            for p in (extended, fork)
        ]
    assert [g.token_ids for g in got] == [w.token_ids for w in want]
    assert got[0].stats.cached_tokens == len(story) + len(first.token_ids) - 1
    assert got[1].stats.cached_tokens == 10  # cut back to the fork
    assert got[0].stats.prompt_tokens == len(extended)
    assert [w.stats.cached_tokens for w in want] == [0, 0]


def test_cutting_a_ping_pong_cache_keeps_each_heads_first_positions() -> None:
    def allocate(n: int) -> tuple[np.ndarray, int]:
        buf = np.zeros(n, np.float32)
        return buf, int(buf.ctypes.data)

    heads, dim, capacity, length = 3, 4, 16, 9
    cache = KVCache([(heads, None, dim)], capacity, allocate, copy=copy_host)
    owners = {int(o.ctypes.data): o for o in (pair[0] for pair in cache._owners[0])}
    values = np.arange(heads * length * dim, dtype=np.float32).reshape(heads, length, dim)
    owners[cache.present_pointers[0]][: values.size] = values.ravel()
    cache.advance(length)  # the step wrote `length` positions; they are the past now
    assert cache.truncate(5)
    assert cache.length == 5 and cache.past_shapes() == [[1, heads, 5, dim]]
    past = owners[cache.past_pointers[0]][: heads * 5 * dim].reshape(heads, 5, dim)
    np.testing.assert_array_equal(past, values[:, :5])
    uncopied = KVCache([(heads, None, dim)], capacity, allocate)
    uncopied.advance(4)
    assert not uncopied.truncate(2) and uncopied.length == 4  # no copy: unchanged, caller resets
    state = KVCache([(heads, None, dim), (2, 3)], capacity, allocate, shared=True)
    state.advance(4)
    assert state.truncate(4) and not state.truncate(3)  # a state is never rewound


def test_the_host_store_brings_back_a_prefix_another_request_evicted(
    demo_bundle_int8: Path,
) -> None:
    def run(**options: object) -> tuple[list[tuple[list[int], int]], int]:
        gen = load(demo_bundle_int8, "ort-cpu", threads=2)
        with Engine(gen, slots=1, **options) as engine:  # type: ignore[arg-type]
            tok = engine.tokenizer
            story = tok.encode(STORY + " " + STORY)
            other = tok.encode("Tom and Ben went to the park. They played with a big blue kite.")
            out = []
            for ids in (story, other, story):  # `other` takes the one slot, then `story` again
                result = engine.submit(ids, max_new_tokens=16, ignore_eos=True).wait(timeout=60)
                out.append((result.token_ids, result.stats.cached_tokens))
            return out, len(story)

    stored, story_tokens = run(prefix_store_bytes=2**20)
    plain, _ = run()
    off, _ = run(prefix_cache=False)
    assert [ids for ids, _ in stored] == [ids for ids, _ in off] == [ids for ids, _ in plain]
    assert stored[2] == (stored[0][0], story_tokens - 1)  # all but the last copied back
    assert plain[2][1] < 2  # without it, `other` had overwritten the slot (all but BOS)


def test_the_host_store_keeps_the_most_recently_used_prefixes() -> None:
    def prefix(first: int, n: int = 4) -> StoredPrefix:
        return StoredPrefix(tuple(range(first, first + n)), [np.zeros(25, np.float32)])  # 100 B

    store = PrefixStore(250)
    store.put(prefix(0))
    store.put(prefix(10))
    found, shared = store.best([0, 1, 2, 9])  # 0..3 is now the most recently used
    assert found is not None and found.ids == (0, 1, 2, 3) and shared == 3
    store.put(prefix(20))  # evicts the least recently used: 10..13
    assert len(store) == 2 and store.nbytes == 200
    assert store.best([10, 11]) == (None, 0)
    store.put(StoredPrefix((1,), [np.zeros(100, np.float32)]))  # larger than the store: not kept
    assert len(store) == 2
