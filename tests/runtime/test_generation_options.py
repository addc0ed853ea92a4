"""GenerationOptions: checked once, passed down; keyword arguments and ``options=`` agree."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_sdk import ContextFullError, GenerationError
from edge_sdk.runtime import Engine, GenerationOptions, Generator, check_fits, load
from edge_sdk.runtime.generator import DEFAULT_MAX_NEW_TOKENS

PROMPT = "Once upon a time"


def test_defaults_and_normalization() -> None:
    options = GenerationOptions()
    assert options.max_new_tokens == DEFAULT_MAX_NEW_TOKENS
    assert options.sampling.greedy and options.stop == () and not options.ignore_eos
    one = GenerationOptions(stop="\n", top_k=3, temperature=1)
    assert one.stop == ("\n",) and one.stops == ("\n",)
    assert isinstance(one.temperature, float) and one.top_k == 3
    assert GenerationOptions(stop=["a", "b"]).stop == ("a", "b")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"max_new_tokens": 0}, "max_new_tokens must be at least 1, got 0"),
        ({"max_new_tokens": 2.5}, "max_new_tokens must be an integer"),
        ({"max_new_tokens": True}, "max_new_tokens must be an integer"),
        ({"temperature": -1}, "temperature must be >= 0"),
        ({"top_k": -1}, "top_k must be >= 0"),
        ({"top_p": 0}, r"top_p must be in \(0, 1\]"),
        ({"repetition_penalty": 0}, "repetition_penalty must be > 0"),
        ({"stop": ["ok", 3]}, "stop must be a string or a list of strings"),
    ],
)
def test_bad_values_raise_one_clear_error(changes: dict[str, object], message: str) -> None:
    with pytest.raises(GenerationError, match=message):
        GenerationOptions(**changes)  # type: ignore[arg-type]
    with pytest.raises(GenerationError, match=message):  # replace() checks again
        GenerationOptions().replace(**changes)


def test_build_merges_keyword_changes() -> None:
    base = GenerationOptions(max_new_tokens=8, seed=3)
    assert GenerationOptions.build(base) is base
    assert GenerationOptions.build(base, temperature=0.5) == GenerationOptions(
        max_new_tokens=8, seed=3, temperature=0.5
    )
    assert GenerationOptions.build(None, max_new_tokens=4) == GenerationOptions(max_new_tokens=4)
    with pytest.raises(GenerationError, match="options must be a GenerationOptions, got dict"):
        GenerationOptions.build({"max_new_tokens": 4})  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        GenerationOptions.build(base, max_tokens=4)


def test_check_fits() -> None:
    check_fits(39, 40)
    with pytest.raises(ContextFullError, match="the prompt takes 40 tokens") as info:
        check_fits(40, 40)
    assert (info.value.needed, info.value.limit) == (40, 40)
    assert "but the context holds 40 (prompt and output together): shorten it" in str(info.value)
    with pytest.raises(ContextFullError, match=r"the conversation takes 50 tokens.*or start a new"):
        check_fits(50, 40, what="the conversation", advice=" or start a new conversation")


def test_keywords_and_options_give_the_same_tokens(gen_fp32: Generator) -> None:
    options = GenerationOptions(max_new_tokens=12, temperature=0.9, top_k=20, seed=7)
    by_keywords = gen_fp32.generate(PROMPT, max_new_tokens=12, temperature=0.9, top_k=20, seed=7)
    by_options = gen_fp32.generate(PROMPT, options=options)
    assert by_options.token_ids == by_keywords.token_ids and len(by_keywords.token_ids) == 12
    # a keyword changes the options it is given
    shorter = gen_fp32.generate(PROMPT, options=options, max_new_tokens=5)
    assert shorter.token_ids == by_keywords.token_ids[:5]
    reply = gen_fp32.chat(template=False).send(PROMPT, options=options).run()
    assert reply.token_ids == by_keywords.token_ids


def test_engine_takes_the_same_options(gen_fp32: Generator, demo_bundle_fp32: Path) -> None:
    options = GenerationOptions(max_new_tokens=6, ignore_eos=True)
    alone = gen_fp32.generate(PROMPT, options=options)
    engine = Engine(load(demo_bundle_fp32, "ort-cpu", threads=1), slots=2)
    try:
        by_options = engine.submit(PROMPT, options=options).wait(60)
        by_keywords = engine.submit(PROMPT, max_new_tokens=6, ignore_eos=True).wait(60)
    finally:
        engine.close(drain=False)
    assert by_options.token_ids == by_keywords.token_ids == alone.token_ids
