"""Gemma's SentencePiece vocabulary in a GGUF (``tokenizer.ggml.model = "llama"``), rebuilt as a
``tokenizers`` BPE.

Gemma's tokenizer is SentencePiece BPE with byte fallback: spaces become ``▁`` (no prefix space),
the text is not pre-split, unknown bytes fall back to ``<0xNN>`` tokens. A GGUF stores the
vocabulary without merges, so they are recovered from it: every way to cut a token into two
tokens of the vocabulary is a merge, and merges are ranked by the position of the token they make
in the file (Gemma's scores are all equal, its vocabulary is in merge order); cuts of one token
are ranked longest left part first. Runs of spaces are stored as real spaces and respelled ``▁``.
Control tokens are special added tokens, user-defined ones (``\\n``, ``<table>`` ...) plain added
tokens; both are matched whole, as llama.cpp does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["gemma_tokenizer_json"]

CONTROL, USER_DEFINED = 3, 4  # llama.cpp's token types (gguf.TokenType)
_SPACE = "\u2581"


def gemma_tokenizer_json(metadata: Mapping[str, Any], tokens: Sequence[str]) -> str:
    """The ``tokenizer.json`` text of a Gemma GGUF's SentencePiece vocabulary."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers

    types = list(metadata.get("tokenizer.ggml.token_type") or [1] * len(tokens))
    spelled = [_SPACE * len(t) if " " in t and not t.strip() else t for t in tokens]
    vocab = {token: index for index, token in enumerate(spelled)}
    unk = _token(metadata, "unknown", spelled) or "<unk>"
    tokenizer = Tokenizer(
        models.BPE(
            vocab=vocab,
            merges=_merges(spelled, vocab),
            unk_token=unk,
            fuse_unk=True,
            byte_fallback=True,
        )
    )
    prefix = (
        [normalizers.Prepend(_SPACE)] if metadata.get("tokenizer.ggml.add_space_prefix") else []
    )
    tokenizer.normalizer = normalizers.Sequence([*prefix, normalizers.Replace(" ", _SPACE)])
    tokenizer.pre_tokenizer = pre_tokenizers.Split(" ", behavior="merged_with_previous")
    tokenizer.decoder = decoders.Sequence(
        [decoders.Replace(_SPACE, " "), decoders.ByteFallback(), decoders.Fuse()]
    )
    pairs = list(zip(spelled, types, strict=True))
    tokenizer.add_special_tokens(
        [AddedToken(t, special=True, normalized=False) for t, k in pairs if k == CONTROL]
    )
    tokenizer.add_tokens(
        [
            AddedToken(t, special=False, normalized=False)
            for (t, k), original in zip(pairs, tokens, strict=True)
            if k == USER_DEFINED and t == original
        ]
    )
    bos = _token(metadata, "bos", spelled)
    if bos is not None and metadata.get("tokenizer.ggml.add_bos_token", True):
        from tokenizers import processors

        tokenizer.post_processor = processors.TemplateProcessing(
            single=[bos, "$A"], pair=[bos, "$A", bos, "$B"], special_tokens=[(bos, vocab[bos])]
        )
    return str(tokenizer.to_str())


def _token(metadata: Mapping[str, Any], key: str, tokens: Sequence[str]) -> str | None:
    index = metadata.get(f"tokenizer.ggml.{key}_token_id")
    return tokens[index] if isinstance(index, int) and 0 <= index < len(tokens) else None


def _merges(tokens: Sequence[str], vocab: Mapping[str, int]) -> list[tuple[str, str]]:
    """Every cut of a token into two vocabulary tokens, ranked by the made token's position, then
    the longer left part, the longer right part, the lower ids."""
    ranked: list[tuple[int, int, int, int, int, str, str]] = []
    for rank, token in enumerate(tokens):
        for cut in range(1, len(token)):
            left, right = token[:cut], token[cut:]
            if left in vocab and right in vocab:
                ranked.append(
                    (rank, -len(left), -len(right), vocab[left], vocab[right], left, right)
                )
    ranked.sort()
    return [(left, right) for *_, left, right in ranked]
