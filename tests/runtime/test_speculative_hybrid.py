"""Speculative decoding on a hybrid model (the session's tiny random Qwen3.5: a linear-attention
layer's conv window and recurrent state beside an attention layer's K/V): the recurrent state is
restored from a checkpoint and the accepted tokens run again, so greedy output equals plain
decoding token for token, on both graphs, with a draft model and in the engine."""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_sdk.runtime import Engine, GenerationStats, Generator, SpeculativeOptions, load
from edge_sdk.runtime.kv_cache import KVCache, copy_host

PROMPT = "Once upon a time there was a cat. The cat sat on the mat. The cat"
TOKENS = 40


class MissingDrafter:
    """Proposes plain decoding's continuation (``want`` after ``prompt``) with every third
    position of the output replaced by a wrong token: a step accepts 0, 1 or 2 drafts."""

    def __init__(self, prompt: Sequence[int], want: Sequence[int]) -> None:
        self.start, self.want = len(prompt), list(want)

    def propose(self, context: Sequence[int], k: int) -> list[int]:
        at = len(context) - self.start  # the output position of the first draft
        right = self.want[at : at + k]
        return [(t + 1) % 2048 if (at + j) % 3 == 2 else t for j, t in enumerate(right)]

    def reset(self) -> None:
        return None


def check_partial(stats: GenerationStats) -> None:
    """Drafts were both accepted and refused; each refusal cost a re-run (a model call)."""
    assert 0 < stats.accepted_tokens < stats.drafted_tokens
    verify_calls = stats.new_tokens - stats.accepted_tokens  # one output token each, at most
    assert stats.model_calls > verify_calls  # the re-runs after partial accepts


@pytest.fixture(scope="module")
def hybrid(qwen3_5_random: tuple[Any, Path]) -> Path:
    return qwen3_5_random[1]


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "standard"])
def test_greedy_equals_plain(hybrid: Path, fused: bool) -> None:
    with load(hybrid, "ort-cpu", threads=1, fused_graph=fused) as gen:
        assert gen.backend.speculation_problem() is None
        ids = gen.encode(PROMPT)
        ask: dict[str, Any] = {"max_new_tokens": TOKENS, "ignore_eos": True}
        plain = gen.generate(ids, **ask).token_ids
        ngram = gen.generate(ids, speculative="ngram", **ask)
        assert ngram.token_ids == plain
        missing = SpeculativeOptions(
            "custom", drafter=MissingDrafter(ids, plain), k_max=4, adaptive=False
        )
        spec = gen.generate(ids, speculative=missing, **ask)
        assert spec.token_ids == plain
        check_partial(spec.stats)
        assert gen.backend.cache_length == len(ids) + TOKENS - 1  # no draft left behind
        follow = [*ids, *plain[:-1], 5, 6]  # the next turn reuses the cache exactly
        assert gen.generate(follow, max_new_tokens=8).token_ids == (
            gen.generate(follow, max_new_tokens=8, cache_prompt=False).token_ids
        )
        # the draft model: the bundle drafts for itself (a hybrid draft, same size)
        drafted = gen.generate(ids, speculative=f"draft:{hybrid}", **ask)
        assert drafted.token_ids == plain and drafted.stats.accepted_tokens > 0


def test_a_hybrid_draft_model_follows_rejections(
    hybrid: Path, gen_fp32: Generator, demo_bundle_fp32: Path
) -> None:
    """The tiny Qwen3.5 (same tokenizer and vocabulary, smaller) drafts for the demo model: most
    drafts are refused, so its own cache goes back to its checkpoint each step."""
    ask: dict[str, Any] = {"max_new_tokens": TOKENS, "ignore_eos": True}
    plain = gen_fp32.generate(PROMPT, **ask)
    fixed = SpeculativeOptions("draft", draft=hybrid, k_max=3, adaptive=False)
    spec = gen_fp32.generate(PROMPT, speculative=fixed, **ask)
    assert spec.token_ids == plain.token_ids
    assert spec.stats.drafted_tokens > spec.stats.accepted_tokens
    with load(hybrid, "ort-cpu", threads=1) as alone:  # its drafts are its greedy tokens
        drafter = gen_fp32._draft_models[hybrid.resolve()]
        context = gen_fp32.encode(PROMPT) + plain.token_ids[:5]
        want = alone.generate(context, max_new_tokens=3, ignore_eos=True).token_ids
        assert drafter.propose(context, 3) == want


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "standard"])
def test_engine_speculates_alone_on_a_hybrid_slot(hybrid: Path, fused: bool) -> None:
    """On the fused graph's slots a partial accept restores the row's marked states and runs
    the accepted tokens again, and the prompt's checkpoint stays for the next turn; on the
    standard graph's one slot the backend's checkpoint does the same."""
    with load(hybrid, "ort-cpu", threads=1) as gen:
        ids = gen.encode(PROMPT)
        plain = gen.generate(ids, max_new_tokens=TOKENS, ignore_eos=True).token_ids
    with Engine(load(hybrid, "ort-cpu", threads=1, fused_graph=fused), slots=2) as engine:
        assert engine.batched is fused
        kinds: list[str] = []
        engine.add_step_listener(lambda step: kinds.append(step.kind))
        missing = SpeculativeOptions(
            "custom", drafter=MissingDrafter(ids, plain), k_max=4, adaptive=False
        )
        result = engine.submit(ids, max_new_tokens=TOKENS, ignore_eos=True, speculative=missing)
        got = result.wait(60)
        assert got.token_ids == plain and "verify" in kinds
        check_partial(got.stats)
        ngram = engine.submit(ids, max_new_tokens=TOKENS, ignore_eos=True, speculative="ngram")
        again = ngram.wait(60)
        assert again.token_ids == plain
        turn = [*ids, 7, 8]  # fused: the prompt's checkpoint (not the verify mark) is reused
        reply = engine.submit(turn, max_new_tokens=6, ignore_eos=True).wait(60)
        assert reply.stats.cached_tokens == (len(ids) if fused else 0)
    with load(hybrid, "ort-cpu", threads=1) as gen:
        assert reply.token_ids == gen.generate(turn, max_new_tokens=6, ignore_eos=True).token_ids


def test_a_state_cache_cuts_back_to_its_checkpoint_only() -> None:
    """K/V [2, None, 3] and a state [4]: a checkpoint's states come back exactly; a length
    with no checkpoint is refused (the cache unchanged); a reset forgets the checkpoint."""

    def allocate(n: int) -> tuple[np.ndarray, int]:
        buffer = np.zeros(n, np.float32)
        return buffer, int(buffer.ctypes.data)

    def state(cache: KVCache) -> np.ndarray:
        """The state's past buffer, as the next step reads it."""
        return np.ctypeslib.as_array((ctypes.c_float * 4).from_address(cache.past_pointers[1]))

    cache = KVCache([(2, None, 3), (4,)], 8, allocate, copy=copy_host)
    cache.advance(3)  # a step wrote 3 positions and a state: the buffers swapped
    state(cache)[:] = 1.0
    before = cache.nbytes
    cache.checkpoint()
    assert cache.nbytes == before + 4 * 4  # one copy of the state
    cache.advance(2)
    state(cache)[:] = 7.0
    assert not cache.truncate(4) and cache.length == 5
    assert state(cache).tolist() == [7.0] * 4
    assert cache.truncate(3) and cache.length == 3
    assert state(cache).tolist() == [1.0] * 4
    cache.reset()
    assert state(cache).tolist() == [0.0] * 4
    cache.advance(3)
    assert not cache.truncate(2)
