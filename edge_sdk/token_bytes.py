"""The raw bytes of one token, as OpenAI's logprobs report them (``bytes``).

Decoding one token alone loses bytes: a token that holds half of a UTF-8 character decodes as
U+FFFD. Its bytes come from the token's string in the vocabulary instead, undoing what the
tokenizer's decoder undoes:

* byte-level BPE (GPT-2, Llama 3, Qwen, SmolLM2): every byte is one printable character of GPT-2's
  ``bytes_to_unicode`` table (``Ġ`` is a space);
* SentencePiece-style (Llama 2, Gemma): ``▁`` is a space and byte-fallback tokens ``<0xE5>`` are
  one byte each;
* added tokens (``<|im_end|>``; Gemma's runs of spaces, spelled ``▁▁``) and anything else: the
  token's text in UTF-8.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

__all__ = ["TokenBytes"]

_BYTE_FALLBACK = re.compile(r"<0x([0-9A-Fa-f]{2})>")


@cache
def _byte_level_table() -> dict[str, int]:
    """GPT-2's ``bytes_to_unicode``, inverted: character -> byte."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


def _decoder_types(decoder: Any) -> set[str]:
    if not isinstance(decoder, dict):
        return set()
    types = {str(decoder.get("type"))}
    for inner in decoder.get("decoders") or ():
        types |= _decoder_types(inner)
    return types


class TokenBytes:
    """Maps token ids to their bytes for one tokenizer (built from its ``tokenizer.json``
    text and its vocabulary: id -> token string, and the ids of added tokens)."""

    def __init__(self, tokenizer_json: str, vocab: dict[int, str], added: set[int]) -> None:
        spec = json.loads(tokenizer_json)
        types = _decoder_types(spec.get("decoder"))
        self._byte_level = "ByteLevel" in types
        self._byte_fallback = "ByteFallback" in types
        self._metaspace = bool(types & {"Metaspace", "Replace"})
        self._vocab = vocab
        self._added = added

    def __call__(self, token_id: int) -> bytes:
        """The bytes of ``token_id`` (b"" for an id outside the vocabulary)."""
        token = self._vocab.get(token_id)
        if token is None:
            return b""
        if token_id in self._added:  # its own text (a SentencePiece one may spell spaces ▁)
            return (token.replace("\u2581", " ") if self._metaspace else token).encode()
        if self._byte_level:
            table = _byte_level_table()
            if all(c in table for c in token):
                return bytes(table[c] for c in token)
            return token.encode()
        if self._byte_fallback:
            match = _BYTE_FALLBACK.fullmatch(token)
            if match:
                return bytes([int(match.group(1), 16)])
        if self._metaspace:
            token = token.replace("\u2581", " ")
        return token.encode()
