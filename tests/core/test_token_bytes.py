"""A token's raw bytes (OpenAI's logprobs ``bytes``), for byte-level BPE and SentencePiece
vocabularies: the bytes of a text's tokens joined are the text's UTF-8, even where one
character spans several tokens."""

from __future__ import annotations

from pathlib import Path

from edge_sdk.tokenizer import Tokenizer
from exporters.gguf.sentencepiece import gemma_tokenizer_json

TEXT = "Hi 小猫 🐱 upon a time"


def test_byte_level_tokens_join_to_the_texts_bytes(demo_bundle_int8: Path) -> None:
    tokenizer = Tokenizer(demo_bundle_int8 / "tokenizer.json")
    ids = tokenizer.encode(TEXT)
    pieces = [tokenizer.token_bytes(i) for i in ids]
    assert b"".join(pieces) == TEXT.encode()
    assert any(len(p) == 1 and p[0] >= 0x80 for p in pieces)  # part of a character
    eos = tokenizer.token_to_id("<|endoftext|>")
    assert eos is not None and tokenizer.token_bytes(eos) == b"<|endoftext|>"
    assert tokenizer.token_bytes(10**9) == b""


def test_sentencepiece_spaces_and_byte_fallback() -> None:
    tokens = ["<pad>", "<eos>", "<bos>", "<unk>", "<0xE5>", "<0xB0>", "<0x8F>", "▁hello", "h", "  "]
    types = [3, 3, 3, 2, 6, 6, 6, 1, 1, 4]
    metadata = {
        "tokenizer.ggml.token_type": types,
        "tokenizer.ggml.bos_token_id": 2,
        "tokenizer.ggml.eos_token_id": 1,
        "tokenizer.ggml.unknown_token_id": 3,
        "tokenizer.ggml.add_space_prefix": False,
    }
    tokenizer = Tokenizer.from_str(gemma_tokenizer_json(metadata, tokens))
    ids = tokenizer.encode("h小", add_special_tokens=False)
    assert ids == [8, 4, 5, 6]  # 小 in three byte-fallback tokens
    assert b"".join(tokenizer.token_bytes(i) for i in ids) == "h小".encode()
    assert tokenizer.token_bytes(4) == b"\xe5"
    assert tokenizer.token_bytes(7) == b" hello"
    assert tokenizer.token_bytes(9) == b"  "  # an added run of spaces, spelled ▁▁
    assert tokenizer.token_bytes(1) == b"<eos>"
