"""Qwen3.5 end to end: a tiny random Qwen3.5 from transformers exported, then run by the runtime
(both graphs) against transformers' own greedy generation, across the delta rule's chunk edge;
continuous batching against one request at a time; the cache's fixed-size state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from edge_sdk.checkpoint import read_checkpoint_metadata
from edge_sdk.exporters import export
from edge_sdk.onnx_io import cache_tensors

pytest.importorskip("transformers.models.qwen3_5")


@pytest.fixture(scope="module")
def qwen3_5(qwen3_5_random: tuple[Any, Path]) -> tuple[Any, Path]:
    """transformers' model and our fp32 bundle of it (the session's, tests/conftest.py)."""
    return qwen3_5_random


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "standard"])
def test_runtime_greedy_equals_transformers(qwen3_5: tuple[Any, Path], fused: bool) -> None:
    from edge_sdk.runtime import load

    hf, bundle = qwen3_5
    prompt = np.random.default_rng(3).integers(5, 2048, 70).tolist()  # > one 64-token chunk
    with torch.no_grad():
        out = hf.generate(torch.tensor([prompt]), max_new_tokens=10, do_sample=False)
    want = out[0, len(prompt) :].tolist()
    with load(bundle, "ort-cpu", fused_graph=fused) as generator:
        assert generator.backend.fused is fused  # type: ignore[attr-defined]
        first = generator.generate(prompt, max_new_tokens=10, ignore_eos=True).token_ids
        again = generator.generate(prompt, max_new_tokens=10, ignore_eos=True).token_ids
    assert first == want
    assert again == want  # a new sequence starts from a zero state


def test_batched_serving_equals_one_request_at_a_time(qwen3_5: tuple[Any, Path]) -> None:
    from edge_sdk.runtime import Engine, load

    _, bundle = qwen3_5
    prompts = ["Once upon a time there was", "The cat", "A big red ball rolled", "Mia"]
    with load(bundle, "ort-cpu", threads=2) as alone:
        want = [alone.generate(p, max_new_tokens=9, ignore_eos=True) for p in prompts]
    with Engine(load(bundle, "ort-cpu", threads=2), slots=3) as engine:  # a slot is reused
        assert engine.batched
        requests = [engine.submit(p, max_new_tokens=9, ignore_eos=True) for p in prompts]
        got = [r.wait(timeout=60) for r in requests]
    assert [g.token_ids for g in got] == [w.token_ids for w in want]


def test_hybrid_rows_on_ortvalue_buffers(qwen3_5: tuple[Any, Path]) -> None:
    """The slots' state rows copied by address in OrtValue buffers (ort-cuda's code path; the
    fp16 CUDA graph does not cover hybrid models): batched == alone, and the prompt cache's
    checkpoint restores a state row."""
    from edge_sdk.runtime import Engine, load
    from tests.runtime.cuda_path import ort_values_generator

    _, bundle = qwen3_5
    prompts = ["Once upon a time there was", "The cat", "A big red ball rolled", "Mia"]
    with load(bundle, "ort-cpu", threads=2) as alone:
        want = [alone.generate(p, max_new_tokens=9, ignore_eos=True).token_ids for p in prompts]
        story = alone.encode("Once upon a time there was a cat")
    with Engine(ort_values_generator(bundle), slots=3) as engine:
        assert engine.batched
        requests = [engine.submit(p, max_new_tokens=9, ignore_eos=True) for p in prompts]
        assert [r.wait(timeout=60).token_ids for r in requests] == want
        first = engine.submit(story, max_new_tokens=6, ignore_eos=True).wait(timeout=60)
        turn = story + first.token_ids[:-1] + [7, 8, 9]
        results = [engine.submit(turn, max_new_tokens=6, ignore_eos=True).wait(60) for _ in "ab"]
        longer = engine.submit([*turn, 21], max_new_tokens=6, ignore_eos=True).wait(timeout=60)
    assert results[0].token_ids == results[1].token_ids
    assert longer.stats.cached_tokens == len(turn)  # cut back to the checkpoint's state
    with load(bundle, "ort-cpu", threads=2) as alone:
        assert alone.generate([*turn, 21], max_new_tokens=6, ignore_eos=True).token_ids == (
            longer.token_ids
        )


def test_the_linear_layers_cache_is_a_fixed_state(qwen3_5: tuple[Any, Path]) -> None:
    from edge_sdk.runtime import load

    _, bundle = qwen3_5
    with load(bundle, "ort-cpu") as generator:
        config = generator.bundle.config
        tensors = cache_tensors(config)
        assert [t.past for t in tensors[:2]] == ["past_state.0.conv", "past_state.0.recurrent"]
        assert [t.grows for t in tensors] == [False, False, True, True]
        for capacity in (64, 256):
            generator.backend.allocate(capacity)
            kv = 2 * config.num_kv_heads * config.head_dim * capacity  # one buffer (fused)
            assert config.linear_attention is not None
            state = 2 * config.linear_attention.state_values()  # read and written buffers
            assert generator.backend.cache_bytes == 4 * (kv + state)


def test_a_vision_language_checkpoint_exports_its_text_decoder(
    demo_checkpoint: Path, tmp_path: Path
) -> None:
    """Qwen3.5's own checkpoints are vision-language ones: the tied head comes from the top
    level (the saved ``text_config`` says untied), the vision tower is left out with a note."""
    import transformers

    from edge_sdk.exporters.ort_check import OrtModel
    from tests.exporters.hf_models import FAMILIES

    text = {k: v for k, v in FAMILIES["qwen3_5"]["extra"].items() if k != "tie_word_embeddings"}
    text |= {"vocab_size": 2048, "hidden_size": 64, "intermediate_size": 128}
    text |= {"num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2}
    vision = {"depth": 1, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2}
    config = transformers.Qwen3_5Config(
        text_config=text,
        vision_config=vision | {"out_hidden_size": 64},
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = transformers.Qwen3_5ForConditionalGeneration(config).eval()
    model.save_pretrained(tmp_path / "hf")
    tokenizer = str(read_checkpoint_metadata(demo_checkpoint)["tokenizer"])
    (tmp_path / "hf" / "tokenizer.json").write_text(tokenizer, encoding="utf-8")
    result = export(tmp_path / "hf", tmp_path / "bundle", "fp32")
    assert any("vision tower" in note for note in result.notes)
    ids = np.array([[5, 17, 99, 300, 41]])
    with torch.no_grad():
        want = model(input_ids=torch.from_numpy(ids)).logits.numpy()
    got, _ = OrtModel(result.bundle.path / "model.onnx", result.bundle.config).run(ids)
    assert np.abs(got - want).max() <= 1e-4


def test_the_prompt_cache_reuses_a_hybrid_state_only_where_it_is_known(
    qwen3_5: tuple[Any, Path],
) -> None:
    from edge_sdk.runtime import Engine, load

    _, bundle = qwen3_5

    def run(engine: Any) -> tuple[list[tuple[list[int], int]], int]:
        story = engine.tokenizer.encode("Once upon a time there was a cat")
        first = engine.submit(story, max_new_tokens=6, ignore_eos=True).wait(timeout=60)
        turn = story + first.token_ids[:-1] + [7, 8, 9]  # extends all the slot holds
        fork = [*story[:-2], 11, 12]  # shares a prefix, but the state is past it
        out = [(first.token_ids, first.stats.cached_tokens)]
        # the last two: the slot holds more than `turn` (no rewind), then the slot's checkpoint
        # (the end of `turn`, its last prompt) is where `turn + [21, 22]` starts again
        for ids in (turn, fork, turn, [*turn, 21, 22]):
            result = engine.submit(ids, max_new_tokens=6, ignore_eos=True).wait(timeout=60)
            out.append((result.token_ids, result.stats.cached_tokens))
        return out, len(turn)

    with Engine(load(bundle, "ort-cpu", threads=2), slots=2, prefix_cache=False) as off:
        want, _ = run(off)
    with Engine(load(bundle, "ort-cpu", threads=2), slots=2) as on:
        got, turn_tokens = run(on)
    assert [ids for ids, _ in got] == [ids for ids, _ in want]
    cached = [c for _, c in got]
    assert cached[0] == 0 and cached[1] > 0 and cached[2:] == [0, 0, turn_tokens]
    with load(bundle, "ort-cpu", threads=2, fused_graph=False) as gen:  # the generator's rule
        story = gen.encode("A big red ball")
        first = gen.generate(story, max_new_tokens=5, ignore_eos=True)
        turn = story + first.token_ids[:-1] + [5, 6]
        reused = gen.generate(turn, max_new_tokens=5, ignore_eos=True)
        again = gen.generate(turn, max_new_tokens=5, ignore_eos=True)  # cannot cut back
        fresh = gen.generate(turn, max_new_tokens=5, ignore_eos=True, cache_prompt=False)
    assert reused.stats.cached_tokens == len(story) + len(first.token_ids) - 1
    assert again.stats.cached_tokens == 0
    assert reused.token_ids == again.token_ids == fresh.token_ids
