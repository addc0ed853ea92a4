"""Incremental detokenization that never emits a broken character.

Byte-level tokenizers split one multi-byte UTF-8 character (Chinese, emoji) over several
tokens; decoding a prefix then ends in U+FFFD. :class:`IncrementalDecoder` decodes a small
window of recent tokens, emits only the text that the window adds beyond what was already
emitted, and holds the tail back while it ends in an incomplete character. The pieces joined
equal decoding every token at once. The window slides, so the per-token work stays constant.
"""

from __future__ import annotations

from edge_sdk.tokenizer import Tokenizer

__all__ = ["IncrementalDecoder"]

_REPLACEMENT = "\ufffd"


class IncrementalDecoder:
    """Feed token ids one at a time; get back the text each one completes (maybe "")."""

    def __init__(self, tokenizer: Tokenizer, context: list[int] | None = None) -> None:
        self._tok = tokenizer
        # A few tokens of context make decoders that strip a leading space behave as mid-text.
        self._ids: list[int] = list(context or [])[-4:]
        self._prefix = 0  # start of the decode window
        self._read = len(self._ids)  # tokens before this are already emitted
        self._prefix_text: str | None = None  # decode of [prefix, read), cached

    def push(self, token_id: int) -> str:
        """Add one token; return the newly completed text."""
        self._ids.append(token_id)
        if self._prefix_text is None:
            self._prefix_text = self._tok.decode(self._ids[self._prefix : self._read])
        prefix_text = self._prefix_text
        text = self._tok.decode(self._ids[self._prefix :])
        if len(text) <= len(prefix_text) or text.endswith(_REPLACEMENT):
            return ""  # incomplete character (or nothing visible yet): hold back
        piece = text[len(prefix_text) :]
        self._prefix, self._read = self._read, len(self._ids)
        self._prefix_text = None
        if self._prefix > 64:  # keep the list short: drop what no window needs any more
            del self._ids[: self._prefix]
            self._read -= self._prefix
            self._prefix = 0
        return piece

    def flush(self) -> str:
        """The text still held back (an incomplete character decodes as U+FFFD)."""
        prefix_text = self._tok.decode(self._ids[self._prefix : self._read])
        text = self._tok.decode(self._ids[self._prefix :])
        self._prefix = self._read = len(self._ids)
        self._prefix_text = None
        return text[len(prefix_text) :] if text.startswith(prefix_text) else ""
