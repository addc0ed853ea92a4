"""Tokenizer wrapper over Hugging Face ``tokenizers`` (Rust, no torch, no transformers)."""

from __future__ import annotations

import os
from pathlib import Path

from edge_sdk.errors import BundleError
from edge_sdk.token_bytes import TokenBytes

__all__ = ["Tokenizer"]


class Tokenizer:
    """Encode text to token ids and decode them back, from a ``tokenizer.json`` file."""

    _token_bytes: TokenBytes | None = None  # built at the first token_bytes()

    def __init__(self, path: str | os.PathLike[str]) -> None:
        from tokenizers import Tokenizer as _HFTokenizer

        self.path = Path(path)
        try:
            self._tok = _HFTokenizer.from_file(str(self.path))
        except Exception as exc:  # tokenizers raises plain Exception subclasses
            raise BundleError(f"cannot load the tokenizer {self.path}: {exc}") from exc

    @classmethod
    def from_str(cls, text: str) -> Tokenizer:
        """Build from the JSON text of a ``tokenizer.json``."""
        from tokenizers import Tokenizer as _HFTokenizer

        self = cls.__new__(cls)
        self.path = Path("<memory>")
        try:
            self._tok = _HFTokenizer.from_str(text)
        except Exception as exc:
            raise BundleError(f"cannot parse tokenizer JSON: {exc}") from exc
        return self

    @property
    def vocab_size(self) -> int:
        """Number of ids, added tokens included."""
        return int(self._tok.get_vocab_size(with_added_tokens=True))

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        """Token ids of ``text``."""
        return list(self._tok.encode(text, add_special_tokens=add_special_tokens).ids)

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        """Text of ``ids``."""
        return str(self._tok.decode(list(ids), skip_special_tokens=skip_special_tokens))

    def token_to_id(self, token: str) -> int | None:
        """Id of a token string, or None."""
        result = self._tok.token_to_id(token)
        return None if result is None else int(result)

    def token_bytes(self, token_id: int) -> bytes:
        """The raw bytes of one token (part of a UTF-8 character, maybe; see
        :mod:`edge_sdk.token_bytes`)."""
        table = self._token_bytes
        if table is None:
            vocab = {int(i): str(t) for t, i in self._tok.get_vocab(with_added_tokens=True).items()}
            added = {int(i) for i in self._tok.get_added_tokens_decoder()}
            table = self._token_bytes = TokenBytes(self.to_str(), vocab, added)
        return table(token_id)

    def to_str(self) -> str:
        """The tokenizer as JSON text."""
        return str(self._tok.to_str())
