"""The runtime's logprobs in OpenAI's two shapes.

Chat (``choice.logprobs``)::

    {"content": [{"token": " the", "logprob": -0.3, "bytes": [32, 116, 104, 101],
                  "top_logprobs": [{"token": " the", "logprob": -0.3, "bytes": [...]}, ...]}],
     "refusal": null}

Completions, the legacy shape (``choice.logprobs``)::

    {"tokens": [" the", ...], "token_logprobs": [-0.3, ...],
     "top_logprobs": [{" the": -0.3, " a": -1.9}, ...], "text_offset": [0, ...]}

A token's ``token`` is its own bytes decoded as UTF-8 with U+FFFD for what is not a whole
character (one token may hold part of an emoji), ``bytes`` those bytes. ``text_offset`` counts
characters of the returned text (with ``echo``, the prompt's tokens come first): each token's
offset is where its first whole character starts. A prompt's first token has no logprob
(``null``, and ``null`` top alternatives). In the legacy dictionary two alternatives with the same
text (rare: different ids, same bytes) keep the more likely one.
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence
from typing import Any

from edge_sdk.runtime.logprobs import TokenLogprob, TokenLogprobs
from edge_sdk.tokenizer import Tokenizer

__all__ = ["ChatLogprobs", "CompletionLogprobs", "TokenNames"]


class TokenNames:
    """Token ids -> their text and bytes, remembered (a vocabulary has few distinct ones)."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self._tokenizer = tokenizer
        self._seen: dict[int, tuple[str, bytes]] = {}

    def __call__(self, token_id: int) -> tuple[str, bytes]:
        named = self._seen.get(token_id)
        if named is None:
            raw = self._tokenizer.token_bytes(token_id)
            named = self._seen[token_id] = (raw.decode("utf-8", errors="replace"), raw)
        return named


class ChatLogprobs:
    """``choice.logprobs`` of a chat completion (and of each stream chunk)."""

    def __init__(self, names: TokenNames) -> None:
        self._names = names

    def _one(self, token_id: int, logprob: float) -> dict[str, Any]:
        text, raw = self._names(token_id)
        return {"token": text, "logprob": _number(logprob), "bytes": list(raw)}

    def body(self, entries: Sequence[TokenLogprobs]) -> dict[str, Any]:
        content = []
        for entry in entries:
            item = self._one(entry.token_id, _number(entry.logprob))  # never None: generated
            item["top_logprobs"] = [self._one(t.token_id, t.logprob) for t in entry.top]
            content.append(item)
        return {"content": content, "refusal": None}


class CompletionLogprobs:
    """The legacy ``choice.logprobs`` of a text completion; keeps the running ``text_offset``
    across the bodies of one response (a stream's chunks continue each other's offsets)."""

    def __init__(self, names: TokenNames) -> None:
        self._names = names
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._offset = 0

    def body(self, entries: Sequence[TokenLogprobs]) -> dict[str, Any]:
        tokens: list[str] = []
        values: list[float | None] = []
        tops: list[dict[str, float] | None] = []
        offsets: list[int] = []
        for entry in entries:
            text, raw = self._names(entry.token_id)
            tokens.append(text)
            values.append(None if entry.logprob is None else _number(entry.logprob))
            tops.append(None if entry.logprob is None else self._top(entry.top))
            offsets.append(self._offset)
            self._offset += len(self._decoder.decode(raw))
        return {
            "tokens": tokens,
            "token_logprobs": values,
            "top_logprobs": tops,
            "text_offset": offsets,
        }

    def _top(self, top: Sequence[TokenLogprob]) -> dict[str, float]:
        out: dict[str, float] = {}
        for alternative in top:  # most likely first: keep the first of equal texts
            out.setdefault(self._names(alternative.token_id)[0], _number(alternative.logprob))
        return out


def _number(logprob: float | None) -> float:
    """A logprob for JSON, which has no -inf: at least -9999.0, as vLLM sends it."""
    return -9999.0 if logprob is None else max(logprob, -9999.0)
