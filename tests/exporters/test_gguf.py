"""GGUF input: tiny files written here (llama, qwen2; float and quantized), then the real
SmolLM2-135M Q4_1 file, each checked against transformers' own GGUF loader."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from edge_sdk import UnsupportedModelError
from edge_sdk.exporters import export, load_model
from edge_sdk.exporters.cli import main
from edge_sdk.exporters.gguf.model import dequantized, read_gguf
from edge_sdk.exporters.gguf.tokenizer import gguf_tokenizer_json
from edge_sdk.tokenizer import Tokenizer
from tests.exporters.gguf_files import CHATML, gguf_vocabulary, tiny_hf_model, write_gguf

transformers = pytest.importorskip("transformers")
gguf = pytest.importorskip("gguf")

TinyFile = tuple[Path, Any]  # the GGUF path (alone in its folder), the transformers model


@pytest.fixture(scope="module")
def tokenizer_json(demo_checkpoint: Path) -> str:
    from edge_sdk.checkpoint import read_checkpoint_metadata

    return str(read_checkpoint_metadata(demo_checkpoint)["tokenizer"])


@pytest.fixture(scope="module")
def tiny_gguf(
    tmp_path_factory: pytest.TempPathFactory, tokenizer_json: str
) -> Callable[..., TinyFile]:
    """``tiny_gguf(family, plan, rope_scaling=False)``: written once per module."""
    made: dict[tuple[str, str, bool], TinyFile] = {}

    def make(family: str, plan: str = "F32", rope_scaling: bool = False) -> TinyFile:
        key = (family, plan, rope_scaling)
        if key not in made:
            model = tiny_hf_model(family, rope_scaling=rope_scaling)
            folder = tmp_path_factory.mktemp(f"{family}-{plan}")
            made[key] = write_gguf(folder / "tiny.gguf", model, family, tokenizer_json, plan), model
        return made[key]

    return make


def _transformers_gguf(path: Path) -> Any:
    return transformers.AutoModelForCausalLM.from_pretrained(
        path.parent, gguf_file=path.name, dtype=torch.float32
    ).eval()


def _relative(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return float((ours - reference).abs().max() / reference.abs().max())


# -- tiny files ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "family, plan", [("llama", "F32"), ("llama", "mixed"), ("qwen2", "F32"), ("qwen2", "mixed")]
)
def test_logits_match_transformers_gguf_loader(
    tiny_gguf: Callable[..., TinyFile], family: str, plan: str
) -> None:
    path, original = tiny_gguf(family, plan)
    ours = load_model(path).model
    ids = torch.randint(0, 2048, (2, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits, _ = ours(ids)
        assert _relative(logits, _transformers_gguf(path)(ids).logits) <= 1e-4
        if plan == "F32":  # nothing lost on the way: the model that was written
            assert _relative(logits, original(ids).logits) <= 1e-4


def test_llama3_rope_scaling_comes_back_from_rope_freqs(tiny_gguf: Callable[..., TinyFile]) -> None:
    # transformers' GGUF loader drops rope_freqs; the reference is the model that was written
    path, original = tiny_gguf("llama", "F32", rope_scaling=True)
    ours = load_model(path).model
    scaling = ours.config.rope_scaling
    assert scaling is not None and scaling.kind == "llama3" and scaling.factor == 8.0
    assert (
        scaling.low_freq_factor,
        scaling.high_freq_factor,
        scaling.original_max_position_embeddings,
    ) == (1.0, 4.0, 64)
    ids = torch.randint(0, 2048, (1, 12), generator=torch.Generator().manual_seed(2))
    far = torch.arange(200, 212)[None]  # where the low frequencies' scaling shows
    with torch.no_grad():
        assert (
            _relative(ours(ids, position_ids=far)[0], original(ids, position_ids=far).logits)
            <= 1e-4
        )


def test_config_tokens_and_chat_template_are_read(tiny_gguf: Callable[..., TinyFile]) -> None:
    path, _ = tiny_gguf("qwen2")
    loaded = load_model(path)
    config = loaded.config
    assert (config.architecture, config.qkv_bias, config.tie_word_embeddings) == (
        "qwen2",
        True,
        True,
    )
    assert (
        config.num_layers,
        config.hidden_size,
        config.num_heads,
        config.num_kv_heads,
        config.head_dim,
        config.intermediate_size,
        config.vocab_size,
    ) == (2, 64, 4, 2, 16, 128, 2048)
    assert config.rms_norm_eps == 1e-6 and config.rope_theta == 1e6
    tokenizer = Tokenizer.from_str(loaded.tokenizer_json)
    im_end = tokenizer.token_to_id("<|im_end|>")
    assert config.bos_token_id == 0 and config.eos_token_ids == (0, im_end)  # eos, then eot
    assert (loaded.name, loaded.source) == ("tiny qwen2", str(path))
    chat = loaded.chat_template
    assert chat is not None and (chat.template, chat.source) == (CHATML, "gguf")
    assert chat.special_tokens == {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>"}
    assert not load_model(tiny_gguf("llama")[0]).config.tie_word_embeddings


def test_tokenizer_matches_transformers(tiny_gguf: Callable[..., TinyFile]) -> None:
    path, _ = tiny_gguf("llama")
    ours = Tokenizer.from_str(load_model(path).tokenizer_json)
    theirs = transformers.AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    text = "<|im_start|>user\nThe little cat<think>ran away, didn't it?<|im_end|>\n  42  über 猫 🤗"
    ids = ours.encode(text)
    assert ids == theirs(text, add_special_tokens=False).input_ids
    assert ours.token_to_id("<|im_start|>") in ids and ours.token_to_id("<think>") in ids
    assert ours.decode(ids, skip_special_tokens=False) == text
    assert "<|im_start|>" not in ours.decode(ids)  # control tokens are special, <think> is not
    assert "<think>" in ours.decode(ids)


def test_add_bos_token_becomes_a_post_processor(
    tiny_gguf: Callable[..., TinyFile], tokenizer_json: str, tmp_path: Path
) -> None:
    _, model = tiny_gguf("llama")
    path = write_gguf(tmp_path / "bos.gguf", model, "llama", tokenizer_json, add_bos=True)
    tokenizer = Tokenizer.from_str(load_model(path).tokenizer_json)
    plain = tokenizer.encode("the cat")
    assert tokenizer.encode("the cat", add_special_tokens=True) == [0, *plain]


# Each pre-tokenizer against the model family's own tokenizer.json (regex, or components).
_ORIGINAL_SPLITS = {
    "llama-bpe": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    "qwen2": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    "qwen35": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}"
    r"| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
}


@pytest.mark.parametrize("pre", ["llama-bpe", "qwen2", "qwen35", "smollm", "gpt-2"])
def test_pre_tokenizers_split_as_the_original_tokenizers(pre: str, tokenizer_json: str) -> None:
    from tokenizers import Regex, pre_tokenizers
    from tokenizers import Tokenizer as RustTokenizer

    tokens, types, merges = gguf_vocabulary(tokenizer_json)
    metadata = {
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": pre,
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.token_type": types,
        "tokenizer.ggml.merges": merges,
    }
    built = gguf_tokenizer_json(metadata)
    assert json.loads(built)["model"]["ignore_merges"] == (pre == "llama-bpe")  # as llama.cpp
    ours = RustTokenizer.from_str(built).pre_tokenizer
    byte_level = pre_tokenizers.ByteLevel(
        add_prefix_space=False, use_regex=pre not in _ORIGINAL_SPLITS
    )
    first = (
        [pre_tokenizers.Split(Regex(_ORIGINAL_SPLITS[pre]), behavior="isolated")]
        if pre in _ORIGINAL_SPLITS
        else [pre_tokenizers.Digits(individual_digits=True)]
        if pre == "smollm"
        else []
    )
    original = pre_tokenizers.Sequence([*first, byte_level])
    text = (
        "Hello WORLD, I'M here! It'S 12345 apples\n\n\tand  3.14159 中文字符 ÀÉÎ 🤗🚀 "
        "x=y+1;\r\n  end   नमस्ते दुनिया cafe\u0301 "
    )
    pieces = [piece for piece, _ in ours.pre_tokenize_str(text)]
    assert pieces == [piece for piece, _ in original.pre_tokenize_str(text)]
    assert len(pieces) > 20


_K_QUANTS = {"Q4_K": (0, 2), "Q5_K": (0, 2), "Q6_K": (208,)}  # where a block keeps f16 scales
_ROUND_TRIP = {"F32": 0.0, "F16": 1e-3, "BF16": 1e-2, "Q8_0": 1e-2, "Q4_0": 0.15, "Q4_1": 0.1}


@pytest.mark.parametrize("kind", [*_ROUND_TRIP, *_K_QUANTS])
def test_tensor_types_dequantize(kind: str, tmp_path: Path) -> None:
    qtype = gguf.GGMLQuantizationType[kind]
    rng = np.random.default_rng(0)
    source = rng.normal(0, 1, (3, 512)).astype(np.float32)
    if kind in _K_QUANTS:  # gguf-py has no K-quant encoder: valid blocks of random bits
        _, block_bytes = gguf.GGML_QUANT_SIZES[qtype]
        blocks = rng.integers(0, 256, (3 * 2, block_bytes), dtype=np.uint8)
        for start in _K_QUANTS[kind]:
            scales = rng.uniform(1e-3, 1e-2, (len(blocks), 1)).astype(np.float16)
            blocks[:, start : start + 2] = scales.view(np.uint8)
        raw = blocks.reshape(3, -1)
    else:
        raw = gguf.quants.quantize(source, qtype)
    writer = gguf.GGUFWriter(str(tmp_path / "t.gguf"), "llama")
    writer.add_tensor("t.weight", raw, raw_dtype=None if kind == "F32" else qtype)
    writer.write_header_to_file(), writer.write_kv_data_to_file(), writer.write_tensors_to_file()
    writer.close()
    _, (tensor,) = read_gguf(tmp_path / "t.gguf")
    values = dequantized(tensor)
    assert values.shape == (3, 512) and values.dtype == np.float32 and values.flags.writeable
    if kind in _ROUND_TRIP:
        assert np.abs(values - source).max() <= _ROUND_TRIP[kind] * np.abs(source).max()
    if kind not in ("F32", "F16", "BF16"):  # against transformers' own torch decoder
        reference = pytest.importorskip("transformers.integrations.gguf.dequant")
        theirs = (
            reference.dequantize(
                torch.from_numpy(np.ascontiguousarray(raw).reshape(-1)), int(qtype)
            )
            .reshape(3, 512)
            .numpy()
        )
        np.testing.assert_allclose(values, theirs, rtol=1e-6, atol=1e-7)


def _truncated(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


_BROKEN: dict[str, tuple[Callable[[Path, Any, str], Path], str]] = {
    "garbage": (
        lambda p, m, t: (p.write_bytes(b"not a model " * 64), p)[1],
        "cannot be read as a GGUF",
    ),
    "truncated": (lambda p, m, t: _truncated(write_gguf(p, m, "llama", t)), "truncated"),
    "architecture": (
        lambda p, m, t: write_gguf(p, m, "llama", t, arch="gemma2"),
        "'gemma2' is not supported; supported: llama, qwen2, qwen3, gemma3, qwen35",
    ),
    "tensor type": (
        lambda p, m, t: write_gguf(p, m, "llama", t, {"ffn_up": "F64"}),
        "stored as F64, which the gguf library cannot dequantize",
    ),
    "no tokenizer": (
        lambda p, m, t: write_gguf(p, m, "llama", t, tokenizer_model=None),
        "has no tokenizer",
    ),
    "sentencepiece": (
        lambda p, m, t: write_gguf(p, m, "llama", t, tokenizer_model="llama"),
        "'llama' (SentencePiece) is not supported",
    ),
    "pre-tokenizer": (
        lambda p, m, t: write_gguf(p, m, "llama", t, pre="klingon"),
        "pre-tokenizer 'klingon' is not supported",
    ),
}


@pytest.mark.parametrize("case", sorted(_BROKEN))
def test_unreadable_files_are_one_clear_error(
    case: str,
    tiny_gguf: Callable[..., TinyFile],
    tokenizer_json: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    make, message = _BROKEN[case]
    path = make(tmp_path / "broken.gguf", tiny_gguf("llama")[1], tokenizer_json)
    with pytest.raises(UnsupportedModelError, match=re.escape(message)):
        load_model(path)
    assert main([str(path), "--int8", "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("edge-export: error: ") and "Traceback" not in "\n".join(err)


def test_export_from_gguf_keeps_the_chat_template(
    tiny_gguf: Callable[..., TinyFile], tmp_path: Path
) -> None:
    path, _ = tiny_gguf("qwen2", "mixed")
    result = export(path, tmp_path / "bundle", "int8", force=True, eval_tokens=64)
    folder = result.bundle.path
    assert (folder / "chat_template.jinja").read_text(encoding="utf-8") == CHATML
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["chat"]["source"] == "gguf" and manifest["model"]["source"] == str(path)
    assert manifest["model"]["config"]["qkv_bias"] and result.parity.worst <= 1e-4
