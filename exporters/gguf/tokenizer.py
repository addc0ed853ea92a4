"""A GGUF file's tokenizer and chat template, rebuilt as a ``tokenizers`` JSON and a ChatTemplate.

A GGUF carries no ``tokenizer.json``: llama.cpp stores the vocabulary (``tokenizer.ggml.tokens``,
``token_type``, ``merges``) and names its pre-tokenizer (``tokenizer.ggml.pre``). Byte-level BPE
(``tokenizer.ggml.model = "gpt2"``: Llama 3, SmolLM, Qwen2 and 3.5, DeepSeek Coder ...) is rebuilt
here:

- pre-tokenizer: llama.cpp's regular expressions for that name, applied one after the other, each
  splitting what the previous left (matches and the text between them both kept: ``isolated``),
  then the byte-to-unicode mapping;
- control tokens (type 3) become special added tokens, user-defined ones (type 4) plain added
  tokens: both are matched whole before the BPE runs, as llama.cpp does;
- ``add_bos_token`` / ``add_eos_token`` become a template post-processor.

Gemma's SentencePiece vocabulary (``"llama"`` in a ``gemma3`` file) is rebuilt by
:mod:`.sentencepiece`. Other SentencePiece vocabularies (Llama 2, TinyLlama, Mistral) are refused
with a clear error; their Hugging Face folders export as they are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from edge_sdk.chat_template import ChatTemplate
from edge_sdk.errors import UnsupportedModelError
from edge_sdk.exporters.gguf.sentencepiece import gemma_tokenizer_json

__all__ = ["PRE_TOKENIZER_SPLITS", "gguf_chat_template", "gguf_tokenizer_json"]

CONTROL, USER_DEFINED = 3, 4  # llama.cpp's token types (gguf.TokenType)

_GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
_CONTRACTIONS = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
_LLAMA3 = (
    _CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2 = _LLAMA3.replace(r"\p{N}{1,3}", r"\p{N}")
# Qwen3.5: Qwen2's, with combining marks (\p{M}) kept in words and out of the punctuation runs
_QWEN35 = (
    _CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_DEFAULT = (r"[\p{P}\$\+<=>\^~\|]+", _GPT2, r"\p{N}+", r"[0-9][0-9][0-9]")
_DEEPSEEK_CODER = (
    r"[\r\n]",
    r"\s?\p{L}+",
    r"\s?\p{P}+",
    "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+",
    r"\p{N}",
)

#: ``tokenizer.ggml.pre`` -> llama.cpp's split expressions for it (``llama-vocab.cpp``).
PRE_TOKENIZER_SPLITS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(
        ("llama3", "llama-v3", "llama-bpe", "falcon3", "pixtral", "dbrx", "smaug-bpe"), (_LLAMA3,)
    ),
    **dict.fromkeys(("qwen2", "deepseek-r1-qwen", "stablelm2", "megrez"), (_QWEN2,)),
    "qwen35": (_QWEN35,),
    **dict.fromkeys(
        ("smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b"),
        (r"\p{N}", _GPT2),
    ),
    **dict.fromkeys(("gpt-2", "gpt2", "phi-2", "mpt", "olmo", "jais", "exaone4"), (_GPT2,)),
    "deepseek-coder": _DEEPSEEK_CODER,
    "default": _DEFAULT,
}
# llama.cpp: these vocabularies take a whole pre-token found in the vocabulary as one token, and
# add BOS unless the file says otherwise.
_LLAMA3_STYLE = frozenset(("llama3", "llama-v3", "llama-bpe", "falcon3", "pixtral"))

_SPECIAL_TOKEN_IDS = (
    ("bos_token", "bos"),
    ("eos_token", "eos"),
    ("unk_token", "unknown"),
    ("pad_token", "padding"),
)


def gguf_tokenizer_json(metadata: Mapping[str, Any]) -> str:
    """The ``tokenizer.json`` text of the tokenizer a GGUF's metadata describes."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

    tokens, kind = metadata.get("tokenizer.ggml.tokens"), metadata.get("tokenizer.ggml.model")
    if not tokens or not kind:
        raise UnsupportedModelError(
            "the GGUF has no tokenizer (tokenizer.ggml.model / tokenizer.ggml.tokens); this SDK "
            "needs the vocabulary in the file: convert the model again with llama.cpp"
        )
    if kind == "llama" and metadata.get("general.architecture") == "gemma3":
        return gemma_tokenizer_json(metadata, tokens)
    if kind != "gpt2":
        what = {"llama": "SentencePiece"}.get(kind, "")
        raise UnsupportedModelError(
            f"GGUF tokenizer {kind!r}{f' ({what})' if what else ''} is not supported; supported: "
            "'gpt2' (byte-level BPE: Llama 3, SmolLM, Qwen2) and Gemma 3's SentencePiece. Export "
            "the model's Hugging Face folder instead"
        )
    pre = str(metadata.get("tokenizer.ggml.pre") or "default")
    if pre not in PRE_TOKENIZER_SPLITS:
        raise UnsupportedModelError(
            f"GGUF pre-tokenizer {pre!r} is not supported; supported: "
            f"{', '.join(sorted(PRE_TOKENIZER_SPLITS))}"
        )
    types = list(metadata.get("tokenizer.ggml.token_type") or [1] * len(tokens))
    if len(types) != len(tokens):
        raise UnsupportedModelError(
            f"the GGUF has {len(tokens)} tokens but {len(types)} token "
            "types; the file may be corrupt"
        )
    try:
        # ignore_merges only where needed: tokenizers 0.19.0 lacks it
        whole_words = {"ignore_merges": True} if pre in _LLAMA3_STYLE else {}
        model = models.BPE(
            vocab=_vocabulary(tokens, types), merges=_merges(metadata), **whole_words
        )
    except Exception as exc:  # tokenizers raises plain Exception subclasses
        raise UnsupportedModelError(
            f"the GGUF vocabulary does not form a BPE tokenizer: {exc}"
        ) from exc
    tokenizer = Tokenizer(model)
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(expr), behavior="isolated")
            for expr in PRE_TOKENIZER_SPLITS[pre]
        ]
        + [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
    )
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(
        [
            AddedToken(t, special=True, normalized=False)
            for t, k in zip(tokens, types, strict=True)
            if k == CONTROL
        ]
    )
    tokenizer.add_tokens(
        [
            AddedToken(t, special=False, normalized=False)
            for t, k in zip(tokens, types, strict=True)
            if k == USER_DEFINED
        ]
    )
    tokenizer.post_processor = _post_processor(metadata, tokens, pre)
    return str(tokenizer.to_str())


def gguf_chat_template(metadata: Mapping[str, Any]) -> ChatTemplate | None:
    """``tokenizer.chat_template`` with the special tokens it may name, or None without one."""
    template = metadata.get("tokenizer.chat_template")
    if not isinstance(template, str) or not template:
        return None
    tokens = metadata.get("tokenizer.ggml.tokens") or []
    special = {}
    for name, key in _SPECIAL_TOKEN_IDS:
        index = metadata.get(f"tokenizer.ggml.{key}_token_id")
        if isinstance(index, int) and 0 <= index < len(tokens):
            special[name] = str(tokens[index])
    return ChatTemplate(template, "gguf", special)


def _vocabulary(tokens: Sequence[str], types: Sequence[int]) -> dict[str, int]:
    """Token text -> id. Byte-level tokens are kept as spelled; a control or user-defined token is
    kept as its text (it is an added token); any other token outside the byte alphabet is
    respelled in it (as transformers does), so every id stays in the vocabulary."""
    spelling = _byte_spelling()
    alphabet = frozenset(spelling.values())
    vocab: dict[str, int] = {}
    for index, (token, kind) in enumerate(zip(tokens, types, strict=True)):
        if kind not in (CONTROL, USER_DEFINED) and not set(token) <= alphabet:
            token = "".join(spelling[b] for b in token.encode("utf-8"))
        vocab[token] = index
    return vocab


def _merges(metadata: Mapping[str, Any]) -> list[tuple[str, str]]:
    merges = metadata.get("tokenizer.ggml.merges")
    if not merges:
        raise UnsupportedModelError(
            "the GGUF's byte-level BPE vocabulary has no merges (tokenizer.ggml.merges); "
            "convert the model again with llama.cpp"
        )
    pairs = [tuple(merge.split(" ")) for merge in merges]
    bad = [merge for merge, pair in zip(merges, pairs, strict=True) if len(pair) != 2]
    if bad:
        raise UnsupportedModelError(f"the GGUF has malformed BPE merges, e.g. {bad[0]!r}")
    return [(pair[0], pair[1]) for pair in pairs]


def _post_processor(metadata: Mapping[str, Any], tokens: Sequence[str], pre: str) -> Any:
    from tokenizers import processors

    byte_level = processors.ByteLevel(trim_offsets=False)
    add = {
        "bos": bool(metadata.get("tokenizer.ggml.add_bos_token", pre in _LLAMA3_STYLE)),
        "eos": bool(metadata.get("tokenizer.ggml.add_eos_token", False)),
    }
    ends: dict[str, tuple[str, int]] = {}
    for end in ("bos", "eos"):
        index = metadata.get(f"tokenizer.ggml.{end}_token_id")
        if add[end] and isinstance(index, int) and 0 <= index < len(tokens):
            ends[end] = (str(tokens[index]), index)
    if not ends:
        return byte_level
    first = [ends["bos"][0]] if "bos" in ends else []
    last = [ends["eos"][0]] if "eos" in ends else []
    template = processors.TemplateProcessing(
        single=[*first, "$A", *last],
        pair=[*first, "$A", *last, *first, "$B", *last],
        special_tokens=list(ends.values()),
    )
    return processors.Sequence([byte_level, template])


@lru_cache(maxsize=1)
def _byte_spelling() -> dict[int, str]:
    """GPT-2's byte -> printable character map (the byte-level BPE alphabet)."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("\xa1"), ord("\xac") + 1),
        *range(ord("\xae"), ord("\xff") + 1),
    ]
    spelling = {byte: chr(byte) for byte in printable}
    for byte in range(256):
        if byte not in spelling:
            spelling[byte] = chr(256 + len(spelling) - len(printable))
    return spelling
