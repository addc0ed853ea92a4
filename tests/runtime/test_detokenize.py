"""Incremental detokenization on the demo's byte-level tokenizer: no broken UTF-8, ever."""

from __future__ import annotations

from edge_sdk.runtime import Generator, IncrementalDecoder, StopMatcher

TEXT = "小猫在花园里玩，看见一只蝴蝶 🦋🐱‍👤 ok — café!"


def test_multibyte_characters_are_held_back_until_complete(gen_fp32: Generator) -> None:
    tok = gen_fp32.tokenizer
    ids = tok.encode(TEXT)
    assert len(ids) > len(TEXT)  # byte-level: characters really are split over tokens
    decoder = IncrementalDecoder(tok)
    pieces = [decoder.push(i) for i in ids] + [decoder.flush()]
    assert all("\ufffd" not in p for p in pieces)
    assert "" in pieces  # something was held back
    assert "".join(pieces) == tok.decode(ids) == TEXT


def test_decoding_continues_a_context(gen_fp32: Generator) -> None:
    tok = gen_fp32.tokenizer
    prompt, rest = tok.encode("Once upon"), tok.encode(" a time 猫")
    decoder = IncrementalDecoder(tok, prompt)
    assert "".join(decoder.push(i) for i in rest) + decoder.flush() == " a time 猫"


def test_chinese_prompt_streams_without_replacement_characters(gen_fp32: Generator) -> None:
    stream = gen_fp32.stream("小猫在花园里玩 🐱", max_new_tokens=40, ignore_eos=True)
    pieces = [event.text for event in stream]
    assert stream.result is not None
    assert not any("\ufffd" in p for p in pieces)
    assert "".join(pieces) == gen_fp32.tokenizer.decode(stream.result.token_ids)


def test_random_bytes_join_to_the_full_decode(gen_fp32: Generator) -> None:
    # a very high temperature samples nearly uniformly, byte tokens (split characters) included
    for seed in range(3):
        stream = gen_fp32.stream(
            "猫", max_new_tokens=120, temperature=50.0, seed=seed, ignore_eos=True
        )
        pieces = [event.text for event in stream]
        assert stream.result is not None
        assert "".join(pieces) == gen_fp32.tokenizer.decode(stream.result.token_ids)


def test_stop_matcher_holds_possible_starts_and_cuts() -> None:
    stops = StopMatcher(["<END>", "\n\n"])
    assert stops.push("Hello <") == "Hello "
    assert stops.push("EN") == ""
    assert stops.push("X more\n") == "<ENX more"
    assert stops.push("\nafter") == ""
    assert stops.matched == "\n\n"
    free = StopMatcher(["abc"])
    assert free.push("xxab") == "xx"
    assert free.flush() == "ab"
    assert StopMatcher([]).push("abc") == "abc"
