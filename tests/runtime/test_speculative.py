"""Speculative decoding on the demo bundles: the same output as plain decoding (greedy token for
token; sampled: the same draws per seed and the model's distribution), drafts accepted, the
statistics, the drafters and the refusals."""

from __future__ import annotations

import json
import math
import shutil
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from edge_sdk import GenerationError
from edge_sdk.bundle import file_record
from edge_sdk.runtime import (
    DraftLength,
    Engine,
    GenerationOptions,
    GenerationStats,
    Generator,
    NGramDrafter,
    ResponseFormat,
    Sampler,
    SamplingOptions,
    SpeculativeOptions,
    load,
)
from edge_sdk.runtime.ort_backend import OrtCudaBackend

# the demo model repeats "The cat sat on the mat" after this: the n-gram drafts land
COPY_PROMPT = "The cat sat on the mat. The cat sat on the mat. The cat sat on the"
STORY = (
    "Tom had a red ball. He liked to play with the ball in the park. One day, the ball went "
    "into the pond. Tom was sad."
)


def check_stats(stats: GenerationStats, tokens: int) -> None:
    """The speculative counts add up: each call gives its accepted drafts plus one token (the
    last call may end on an accepted draft)."""
    assert stats.new_tokens == tokens
    assert 0 <= stats.accepted_tokens <= stats.drafted_tokens
    calls, accepted = stats.model_calls, stats.accepted_tokens
    assert calls + accepted - 1 <= tokens <= calls + accepted
    assert stats.tokens_per_call == pytest.approx(tokens / calls)
    assert stats.to_dict()["acceptance_rate"] == stats.acceptance_rate


@pytest.mark.parametrize("which", ["gen_fp32", "gen_int8"])
def test_ngram_greedy_equals_plain(which: str, request: pytest.FixtureRequest) -> None:
    gen: Generator = request.getfixturevalue(which)
    for prompt in (COPY_PROMPT, STORY):
        plain = gen.generate(prompt, max_new_tokens=64, ignore_eos=True)
        spec = gen.generate(prompt, max_new_tokens=64, ignore_eos=True, speculative="ngram")
        assert spec.token_ids == plain.token_ids and spec.text == plain.text
        check_stats(spec.stats, 64)
        assert plain.stats.model_calls == 64 and plain.stats.drafted_tokens == 0
    fixed = SpeculativeOptions("ngram", k_max=4, adaptive=False)
    spec = gen.generate(COPY_PROMPT, max_new_tokens=64, ignore_eos=True, speculative=fixed)
    plain = gen.generate(COPY_PROMPT, max_new_tokens=64, ignore_eos=True)
    assert spec.token_ids == plain.token_ids
    assert spec.stats.accepted_tokens > 0 and spec.stats.model_calls < 64
    check_stats(spec.stats, 64)
    assert "drafts accepted" in spec.stats.summary()


def test_draft_model_greedy_equals_plain(gen_int8: Generator, demo_bundle_fp32: Path) -> None:
    """The demo's fp32 bundle drafts for its int8 one (same tokenizer, same size: allowed)."""
    plain = gen_int8.generate(STORY, max_new_tokens=48, ignore_eos=True)
    spec = gen_int8.generate(
        STORY, max_new_tokens=48, ignore_eos=True, speculative=f"draft:{demo_bundle_fp32}"
    )
    assert spec.token_ids == plain.token_ids
    check_stats(spec.stats, 48)
    fixed = SpeculativeOptions("draft", draft=demo_bundle_fp32, k_max=4, adaptive=False)
    spec = gen_int8.generate(STORY, max_new_tokens=48, ignore_eos=True, speculative=fixed)
    assert spec.token_ids == plain.token_ids
    check_stats(spec.stats, 48)
    assert spec.stats.acceptance_rate > 0.8 and spec.stats.tokens_per_call > 3
    again = gen_int8.generate(  # the loaded draft model is reused, its cache cut back
        STORY + " His mom", max_new_tokens=16, speculative=f"draft:{demo_bundle_fp32}"
    )
    assert again.token_ids == gen_int8.generate(STORY + " His mom", max_new_tokens=16).token_ids


def test_standard_graph_and_stops(demo_bundle_fp32: Path) -> None:
    with load(demo_bundle_fp32, "ort-cpu", threads=1, fused_graph=False) as gen:
        assert gen.backend.speculation_problem() is None
        plain = gen.generate(COPY_PROMPT, max_new_tokens=40, ignore_eos=True)
        spec = gen.generate(COPY_PROMPT, max_new_tokens=40, ignore_eos=True, speculative="ngram")
        assert spec.token_ids == plain.token_ids
        # a stop string inside an accepted run of drafts ends there; the cache keeps no drafts
        stop = plain.text[10:16]
        cut = gen.generate(COPY_PROMPT, max_new_tokens=40, stop=stop, speculative="ngram")
        assert cut.stop_reason == "stop" and cut.text == plain.text[: plain.text.index(stop)]
        assert gen.backend.cache_length == cut.stats.context_tokens - 1


def test_sampled_tokens_equal_plain_per_seed(gen_fp32: Generator) -> None:
    options = {"max_new_tokens": 24, "temperature": 0.9, "top_k": 20, "ignore_eos": True}
    for seed in range(6):
        plain = gen_fp32.generate(COPY_PROMPT, seed=seed, **options)
        spec = gen_fp32.generate(COPY_PROMPT, seed=seed, speculative="ngram", **options)
        assert spec.token_ids == plain.token_ids


def test_constraints_stops_and_logprobs_keep_working(gen_fp32: Generator) -> None:
    """Rows are pushed through the sequence's own output: a JSON constraint, logprobs and a
    repetition penalty give what plain decoding gives."""
    fixed = SpeculativeOptions("ngram", k_max=4, adaptive=False)
    options = {
        "max_new_tokens": 24,
        "response_format": ResponseFormat.json_object(),
        "logprobs": 2,
        "repetition_penalty": 1.1,
    }
    plain = gen_fp32.generate(COPY_PROMPT, **options)
    spec = gen_fp32.generate(COPY_PROMPT, speculative=fixed, **options)
    assert spec.token_ids == plain.token_ids and spec.text == plain.text
    assert spec.text.startswith("{") and spec.stats.drafted_tokens > 0
    assert plain.logprobs is not None and spec.logprobs is not None
    np.testing.assert_allclose(
        [e.logprob for e in spec.logprobs], [e.logprob for e in plain.logprobs], atol=1e-5
    )


class FixedDrafter:
    """Always proposes the same tokens: wrong most of the time, so rejection does the work."""

    def __init__(self, tokens: Sequence[int]) -> None:
        self.tokens = list(tokens)

    def propose(self, context: Sequence[int], k: int) -> list[int]:
        return self.tokens[:k]

    def reset(self) -> None:
        return None


def _chi_square_limit(df: int, z: float = 3.719) -> float:
    """The chi-square quantile of ``df`` degrees of freedom at the normal quantile ``z``
    (Wilson-Hilferty; 3.719: p = 1e-4)."""
    c = 2 / (9 * df)
    return float(df * (1 - c + z * math.sqrt(c)) ** 3)


def _pairs_follow_the_model(
    gen: Generator, speculative: SpeculativeOptions, samples: int = 600, top: int = 3
) -> int:
    """Two tokens at temperature 1 among the top ``top``, the second checked against a draft:
    the pairs must follow the model's probabilities (chi-square over ``samples`` seeds, p =
    1e-4). The drafts accepted, in total."""
    prompt = gen.encode("Once upon a time, there was a")
    first = gen.generate(prompt, max_new_tokens=1, logprobs=top)
    assert first.logprobs is not None
    firsts = first.logprobs[0].top
    expected: dict[tuple[int, int], float] = {}
    p1 = _renormalized([t.logprob for t in firsts])
    for a, pa in zip(firsts, p1, strict=True):
        second = gen.generate([*prompt, a.token_id], max_new_tokens=1, logprobs=top)
        assert second.logprobs is not None
        seconds = second.logprobs[0].top
        for b, pb in zip(seconds, _renormalized([t.logprob for t in seconds]), strict=True):
            expected[(a.token_id, b.token_id)] = pa * pb
    seen: Counter[tuple[int, int]] = Counter()
    accepted = 0
    for seed in range(samples):
        result = gen.generate(
            prompt,
            max_new_tokens=3,  # the draft checks the second; the third needs none
            temperature=1.0,
            top_k=top,
            seed=seed,
            ignore_eos=True,
            speculative=speculative,
        )
        seen[(result.token_ids[0], result.token_ids[1])] += 1
        accepted += result.stats.accepted_tokens
    assert set(seen) <= set(expected)
    chi2 = sum((seen[c] - samples * p) ** 2 / (samples * p) for c, p in expected.items())
    assert chi2 < _chi_square_limit(len(expected) - 1)
    return accepted


def test_sampled_pairs_follow_the_model(gen_fp32: Generator) -> None:
    """A drafter that always proposes one token (the likeliest pair's second): a row keeps it
    when the sampler draws it (q one-hot)."""
    prompt = gen_fp32.encode("Once upon a time, there was a")
    favourite = gen_fp32.generate(prompt, max_new_tokens=2, ignore_eos=True).token_ids[1]
    drafter = FixedDrafter([favourite])
    fixed = SpeculativeOptions("custom", drafter=drafter, adaptive=False, k_max=1)
    accepted = _pairs_follow_the_model(gen_fp32, fixed)
    assert 0 < accepted < 600  # the draft was both taken and refused


class SkewedDrafter:
    """Draws its one draft from a fixed q: uniform over ``tokens`` (a sampling drafter that
    knows nothing of the model: drafts are often refused, and the refusals redraw)."""

    def __init__(self, tokens: Sequence[int], vocab: int) -> None:
        self.q = np.zeros(vocab)
        self.q[list(tokens)] = 1 / len(tokens)

    def propose(self, context: Sequence[int], k: int) -> list[int]:
        raise AssertionError("a sampling drafter draws when the generation samples")

    def propose_sampled(
        self, context: Sequence[int], k: int, sampler: Sampler
    ) -> tuple[list[int], list[np.ndarray]]:
        return [sampler.draw(self.q)], [self.q]

    def reset(self) -> None:
        return None


def test_drawn_drafts_follow_the_model(gen_fp32: Generator, demo_bundle_int8: Path) -> None:
    """When sampling, a draft model draws its drafts from its own top-3 distribution q; a row
    keeps one with probability min(1, p/q), else draws from max(0, p - q): the pairs still
    follow the target, with the demo's int8 bundle drafting (q close to p: most kept) and with
    a q far from p (uniform over a few ids: many refused)."""
    draft = SpeculativeOptions("draft", draft=demo_bundle_int8, adaptive=False, k_max=1)
    spec = gen_fp32.speculation(GenerationOptions(temperature=1.0, top_k=3, speculative=draft))
    assert spec is not None and spec.sampled
    assert _pairs_follow_the_model(gen_fp32, draft) > 400
    prompt = gen_fp32.encode("Once upon a time, there was a")
    seconds = gen_fp32.generate(prompt, max_new_tokens=2, logprobs=3).logprobs
    assert seconds is not None
    tokens = [*(t.token_id for t in seconds[1].top[:2]), 5, 6, 7]  # two of p's, three not
    skewed = SkewedDrafter(tokens, gen_fp32.bundle.config.vocab_size)
    custom = SpeculativeOptions("custom", drafter=skewed, adaptive=False, k_max=1)
    assert 50 < _pairs_follow_the_model(gen_fp32, custom) < 400


def test_the_acceptance_rule_keeps_the_target_distribution() -> None:
    """Sampler.verify over 6 tokens: drafts drawn from q, kept with min(1, p/q), else redrawn
    from max(0, p - q): the tokens follow p (temperature 0.7, top-k 4: p is zero on two ids)
    whatever q is (one close to p, one that puts mass where p has none)."""
    logits = np.array([2.0, 1.5, 0.3, -0.2, -1.0, 0.9])
    sampler = Sampler(SamplingOptions(temperature=0.7, top_k=4, seed=1), 6)
    p = sampler.distribution(logits)
    assert p[[3, 4]].tolist() == [0.0, 0.0] and p.sum() == pytest.approx(1.0)
    draws = np.random.default_rng(2)
    samples = 20000
    for q in (np.full(6, 1 / 6), np.array([0.05, 0.05, 0.1, 0.4, 0.3, 0.1])):
        counts = np.zeros(6)
        kept = 0
        for _ in range(samples):
            draft = int(draws.choice(6, p=q))
            token = sampler(logits, drafted=(draft, q))
            counts[token] += 1
            kept += token == draft
        assert counts[[3, 4]].sum() == 0
        live = p > 0
        chi2 = float((((counts - samples * p) ** 2)[live] / (samples * p[live])).sum())
        assert chi2 < _chi_square_limit(int(live.sum()) - 1)
        assert kept / samples == pytest.approx(np.minimum(p, q).sum(), abs=0.02)


def _renormalized(logprobs: Sequence[float]) -> list[float]:
    weights = np.exp(np.asarray(logprobs, dtype=np.float64))
    return list(weights / weights.sum())


def test_ngram_drafter_index() -> None:
    drafter = NGramDrafter(ngram_max=3, ngram_min=1)
    context = [1, 2, 3, 4, 5, 9, 2, 3]
    assert drafter.propose(context, 3) == [4, 5, 9]  # "2 3" matched, latest occurrence
    assert drafter.propose([*context, 4, 7], 2) == []  # "4 7", "7": never seen before
    assert drafter.propose([*context, 4, 7, 1], 2) == [2, 3]  # incremental: "1" seen at 0
    assert drafter.propose([5, 5], 4) == [5]  # not a continuation: indexed anew
    assert drafter.propose([1, 2], 0) == []


def test_draft_length_weighs_acceptance_against_call_costs() -> None:
    length = DraftLength(SpeculativeOptions("ngram", k_max=6))
    assert length.next() == 0  # first plain steps, to time a one-row call
    length.timed(1, 0.050)  # a warm-up: replaced by the next one-row time, not averaged
    assert length.next() == 0
    length.timed(1, 0.010)
    costs = length.costs()
    assert costs is not None and costs[0] == 0.010
    assert length.next() > 0  # an extra row assumed at a quarter of a call: worth a try
    for _ in range(10):  # cheap rows (a GPU, a CPU with a fast multi-row kernel), all taken
        length.timed(7, 0.012)
        length.update(6, 6)
    assert length.next() == 6 and length.acceptance > 0.9
    for _ in range(DraftLength.RETIME_EVERY):
        length.timed(7, 0.012)
    assert length.next() == 0  # a plain step now and then re-times the one-row call
    length.timed(1, 0.010)
    assert length.next() == 6
    for _ in range(10):  # rows as dear as calls (this CPU's 8-bit kernel): never worth it
        length.timed(2, 0.019)
        length.timed(7, 0.065)
        length.update(1, 0)
    probes = [length.next() for _ in range(2 * DraftLength.PROBE_EVERY)]
    assert probes.count(1) == 2 and probes.count(0) == len(probes) - 2  # probes only
    waits = []
    for landed in (0, 0, 1):  # failed probes back off; one that lands resets the wait
        steps = next(n for n in range(1, 200) if length.next() == 1)
        waits.append(steps)
        length.update(1, landed)
    assert waits[1] == 2 * waits[0] == 4 * DraftLength.PROBE_EVERY // 2
    steps = next(n for n in range(1, 200) if length.next() == 1)
    assert steps <= DraftLength.PROBE_EVERY
    fixed = DraftLength(SpeculativeOptions("ngram", k_max=3, adaptive=False))
    assert fixed.next() == 3


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("medusa", "unknown speculative method 'medusa'; choose ngram or draft:PATH"),
        ("draft:", "needs a draft bundle: draft:PATH"),
        (SpeculativeOptions, "k_max must be an integer from 1 to 32, got 0"),
        (3.5, "speculative must be None, 'ngram', 'draft:PATH'"),
    ],
)
def test_bad_options(gen_fp32: Generator, value: object, message: str) -> None:
    if value is SpeculativeOptions:
        with pytest.raises(GenerationError, match=message):
            SpeculativeOptions("ngram", k_max=0)
        return
    with pytest.raises(GenerationError, match=message.replace("(", r"\(").replace("'", "'")):
        gen_fp32.generate("Hi", speculative=value)


def _copy_bundle(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def _rewrite(bundle: Path, name: str, text: str) -> None:
    """Change a bundle file and its manifest record (so the hashes still verify)."""
    (bundle / name).write_text(text, encoding="utf-8")
    manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    manifest["files"][name] = file_record(bundle / name)
    (bundle / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


def test_draft_bundle_refusals(gen_fp32: Generator, demo_bundle_fp32: Path, tmp_path: Path) -> None:
    other = _copy_bundle(demo_bundle_fp32, tmp_path / "other-tokenizer")
    tokenizer = json.loads((other / "tokenizer.json").read_text(encoding="utf-8"))
    tokenizer["added_tokens"] = [*tokenizer.get("added_tokens", []), {**_added(tokenizer)}]
    _rewrite(other, "tokenizer.json", json.dumps(tokenizer))
    with pytest.raises(GenerationError, match="has another tokenizer than"):
        gen_fp32.generate("Hi", speculative=f"draft:{other}")
    larger = _copy_bundle(demo_bundle_fp32, tmp_path / "larger")
    manifest = json.loads((larger / "manifest.json").read_text(encoding="utf-8"))
    manifest["model"]["config"]["intermediate_size"] *= 4
    (larger / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(GenerationError, match="is larger than its target"):
        gen_fp32.generate("Hi", speculative=f"draft:{larger}")
    assert gen_fp32.generate("Hi", max_new_tokens=3).stats.new_tokens == 3  # still usable


def _added(tokenizer: dict[str, object]) -> dict[str, object]:
    added = tokenizer.get("added_tokens") or []
    assert isinstance(added, list) and added
    return {**added[-1], "id": int(added[-1]["id"]) + 1000, "content": "<|extra|>"}


def test_gpu_backends_refuse_before_any_token(demo_bundle_fp32: Path) -> None:
    from edge_sdk.bundle import load_bundle
    from edge_sdk.runtime import BackendOptions

    backend = OrtCudaBackend(load_bundle(demo_bundle_fp32), BackendOptions())
    problem = backend.speculation_problem()
    assert problem is not None and "backend='ort-cpu'" in problem


def test_engine_speculates_while_alone(gen_int8: Generator, demo_bundle_int8: Path) -> None:
    """One request alone in the engine speculates on its slot (verify steps); beside another it
    decodes in the batch; the output equals the generator's plain output either way."""
    fixed = SpeculativeOptions("ngram", k_max=4, adaptive=False)
    plain = gen_int8.generate(COPY_PROMPT, max_new_tokens=40, ignore_eos=True).token_ids
    story = gen_int8.generate(STORY, max_new_tokens=40, ignore_eos=True).token_ids
    with Engine(load(demo_bundle_int8, "ort-cpu", threads=1), slots=2) as engine:
        kinds: list[str] = []
        engine.add_step_listener(lambda step: kinds.append(step.kind))
        alone = engine.submit(COPY_PROMPT, max_new_tokens=40, ignore_eos=True, speculative=fixed)
        result = alone.wait(60)
        assert result.token_ids == plain and "verify" in kinds
        check_stats(result.stats, 40)
        assert result.stats.accepted_tokens > 0
        both = [
            engine.submit(COPY_PROMPT, max_new_tokens=40, ignore_eos=True, speculative=fixed),
            engine.submit(STORY, max_new_tokens=40, ignore_eos=True, speculative=False),
        ]
        first, second = (r.wait(60) for r in both)
        assert first.token_ids == plain and second.token_ids == story
        assert second.stats.drafted_tokens == 0 and second.stats.model_calls == 40
        check_stats(first.stats, 40)


#: MatMulNBits computing in float32: one-row and multi-row calls agree to float rounding
#: (the default level 4 quantizes activations differently by row count: runtime/README.md,
#: "Speculative decoding", measured up to ~1.4 in SmolLM2's logits).
FLOAT_COMPUTE = {"session.qdq_matmulnbits_accuracy_level": "1"}


def test_smollm2_int8_greedy_equals_plain(smollm2_int8: Path) -> None:
    """SmolLM2 int8 over 64 tokens of a copy prompt: n-gram drafts are accepted and the output
    is plain decoding's, token for token, where the kernel computes the same rows alike."""
    code = Path(__file__).read_text(encoding="utf-8")[:1200]
    with load(smollm2_int8, "ort-cpu", threads=2, session_config=FLOAT_COMPUTE) as gen:
        ids = gen.encode(f"Repeat this code exactly:\n\n{code}\n\nRepeated:\n\n{code[:300]}")
        ask = {"max_new_tokens": 64, "ignore_eos": True}
        plain = gen.generate(ids, **ask)
        spec = gen.generate(ids, speculative="ngram", **ask)
        free = gen.encode("The little robot looked at the stars and wondered")
        assert gen.generate(free, speculative="ngram", **ask).token_ids == (
            gen.generate(free, **ask).token_ids
        )
    assert spec.token_ids == plain.token_ids
    assert spec.stats.accepted_tokens > 0
    check_stats(spec.stats, 64)


class CallCounter:
    """An onnxruntime session that counts its runs (everything else is the session's)."""

    def __init__(self, session: object) -> None:
        self.session, self.runs = session, 0

    def run_with_iobinding(self, binding: object) -> None:
        self.runs += 1
        self.session.run_with_iobinding(binding)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        return getattr(self.session, name)


def test_fused_graph_checks_drafts_in_one_call(demo_bundle_fp32: Path) -> None:
    """``logits_to_keep``: the pending token and 4 drafts on top of a cache give 5 rows from
    one call, equal to running them one by one, on the backend and on an engine slot; the
    one-row bindings work afterwards."""
    prompt, checked = [7, 99, 3, 250, 1000, 64], np.array([12, 8, 300, 41, 5])
    with load(demo_bundle_fp32, "ort-cpu", threads=1) as gen:
        backend = gen.backend
        counter = CallCounter(backend.session)  # type: ignore[attr-defined]
        backend.session = counter  # type: ignore[attr-defined]
        backend.allocate(64)
        backend.forward(np.array(prompt))
        rows = backend.forward_all(checked)
        assert counter.runs == 2 and rows.shape == (5, gen.bundle.config.vocab_size)
        assert backend.truncate(len(prompt))
        singles = np.stack([backend.forward(checked[i : i + 1]).copy() for i in range(5)])
        np.testing.assert_allclose(rows, singles, atol=1e-5)
        slots = backend.slot_model(2, 64)
        assert slots is not None
        slots.prefill(1, prompt)
        runs = counter.runs
        np.testing.assert_allclose(slots.prefill_all(1, checked), rows, atol=1e-5)
        assert counter.runs == runs + 1 and slots.lengths[1] == len(prompt) + 5
        assert slots.truncate(1, len(prompt) + 2)
        np.testing.assert_allclose(slots.decode([1], [300])[1], singles[2], atol=1e-5)
        slots.close()


def test_engine_draws_drafts_when_sampling(demo_bundle_int8: Path) -> None:
    """Alone in the engine, a sampled request's draft model draws its drafts and the verify
    step keeps them by min(1, p/q): the bundle drafting for itself has q = p (up to the
    kernel's rounding between one-row and multi-row calls), so nearly every draft lands, where
    comparing drawn drafts with the target's own draws keeps only about sum(p^2) of them; a
    seed gives the same tokens again."""
    draft = SpeculativeOptions("draft", draft=demo_bundle_int8, k_max=4, adaptive=False)
    ask = {"max_new_tokens": 48, "ignore_eos": True, "temperature": 0.8, "seed": 5}
    with Engine(load(demo_bundle_int8, "ort-cpu", threads=1), slots=2) as engine:
        spec = engine.generator.speculation(GenerationOptions(temperature=0.8, speculative=draft))
        assert spec is not None and spec.sampled
        first, again = (engine.submit(STORY, speculative=draft, **ask).wait(60) for _ in "ab")
    assert first.token_ids == again.token_ids and len(first.token_ids) == 48
    assert first.stats.drafted_tokens > 0 and first.stats.acceptance_rate > 0.9
