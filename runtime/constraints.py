"""Structured output: generation constrained to a JSON schema or a grammar.

::

    fmt = ResponseFormat.json_schema({"type": "object", "properties": {"ok": {"type": "boolean"}}})
    result = gen.generate("Reply in JSON:", response_format=fmt, max_new_tokens=64)
    json.loads(result.text)  # parses and validates, unless max_new_tokens cut it

Constrained decoding with llguidance (the grammar library llama.cpp and onnxruntime-genai use;
Rust, no torch), imported lazily: ``pip install 'edge-sdk-orin[structured]'``. A
:class:`ResponseFormat` is checked when made (:class:`~edge_sdk.GenerationError` names the
problem: an invalid schema, an unsupported keyword, a Lark syntax error). Each sequence gets a
:class:`FormatMatcher`: before a token is picked, the tokens the grammar forbids get ``-inf``
(end-of-sequence only where the grammar accepts); the picked token advances it; when the grammar
is complete (nothing can follow) the generation ends with stop reason ``"stop"`` (``"eos"``
when the model itself ended an output the grammar accepts).

The mask is a separate step after the model's raw logits and the repetition penalty, before
temperature, top-k and top-p. Greedy decoding first asks the grammar whether the most likely
token is allowed and builds the whole mask only when it is not (the same token either way).
"""

from __future__ import annotations

import json
import logging
import threading
import weakref
from collections import OrderedDict
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from edge_sdk._optional import require
from edge_sdk.errors import GenerationError
from edge_sdk.tokenizer import Tokenizer

__all__ = ["FormatKind", "FormatMatcher", "ResponseFormat"]

_log = logging.getLogger(__name__)

FormatKind = Literal["json_object", "json_schema", "grammar"]
_KINDS = ("json_object", "json_schema", "grammar")

# JSON on one line, with the spaces models usually write ({"a": 1, "b": 2}): flexible
# whitespace lets a small model pad forever instead of closing the object.
_JSON_OPTIONS: dict[str, Any] = {
    "whitespace_flexible": False,
    "key_separator": ": ",
    "item_separator": ", ",
}


def _json_options(strict: bool) -> dict[str, Any]:
    """llguidance's JSON options; not ``strict``: ignore what cannot be enforced, and read
    ``oneOf`` as ``anyOf``."""
    return {**_JSON_OPTIONS, "lenient": not strict, "coerce_one_of": not strict}


def _llguidance() -> Any:
    return require("llguidance", "structured output (response_format)")


_SUBSCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "prefixItems")
_SUBSCHEMAS = ("items", "additionalProperties", "not", "if", "then", "else", "contains")


def _closed(schema: Any) -> Any:
    """``schema`` with ``additionalProperties: false`` on each object that leaves it unset
    (as strict mode does for OpenAI and xgrammar): the model writes the properties the schema
    names, not endless others, and what it writes still validates against ``schema``. The
    branches of ``allOf`` stay open (closing each would forbid the others' properties)."""
    if not isinstance(schema, Mapping):
        return schema
    out = dict(schema)
    for key in _SUBSCHEMA_MAPS:
        if isinstance(out.get(key), Mapping):
            out[key] = {name: _closed(sub) for name, sub in out[key].items()}
    for key in _SUBSCHEMA_LISTS:
        if isinstance(out.get(key), list):
            out[key] = [_closed(sub) for sub in out[key]]
    for key in _SUBSCHEMAS:
        if key in out:
            out[key] = _closed(out[key])
    objectish = out.get("type") == "object" or "properties" in out
    if objectish and "additionalProperties" not in out and "patternProperties" not in out:
        out["additionalProperties"] = False
    return out


@dataclass(frozen=True)
class ResponseFormat:
    """What the output must be; build it with :meth:`json_object`, :meth:`json_schema` or
    :meth:`grammar` (or ``ResponseFormat(kind=..., schema=..., lark=...)``).

    ``json_object``: any JSON object. ``json_schema``: JSON that validates against ``schema``
    (a dict); with ``strict`` (the default) a keyword llguidance cannot enforce (such as
    ``uniqueItems``, or ``oneOf``) is an error, without it the keyword is ignored (``oneOf`` is
    read as ``anyOf``) and the output may break it. An object without
    ``additionalProperties`` gets only the properties its schema names (as in OpenAI's strict
    mode and xgrammar), so a model cannot add keys forever.
    ``grammar``: text matching ``lark``, an llguidance Lark grammar (``start`` is the top rule;
    ``%json { ...schema... }`` embeds a JSON schema, ``<|name|>`` a special token). Checked
    when made: :class:`~edge_sdk.GenerationError`.
    """

    kind: FormatKind
    schema: Mapping[str, Any] | None = field(default=None, hash=False)
    strict: bool = True
    lark: str | None = None
    _grammar: str = field(default="", init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise GenerationError(
                f"response_format kind must be one of {', '.join(_KINDS)}, got {self.kind!r}"
            )
        if self.kind == "grammar":
            if not isinstance(self.lark, str) or not self.lark.strip():
                raise GenerationError("a grammar response format needs its Lark grammar text")
            grammar = _llguidance().LLMatcher.grammar_from_lark(self.lark)
        else:
            grammar = self._json_grammar()
        error = _llguidance().LLMatcher.validate_grammar(grammar)
        if error:
            what = "grammar" if self.kind == "grammar" else "JSON schema"
            raise GenerationError(f"response_format: invalid {what}: {error.strip()}")
        object.__setattr__(self, "_grammar", grammar)

    def _json_grammar(self) -> str:
        if self.kind == "json_object":
            schema: Mapping[str, Any] = {"type": "object"}
        elif not isinstance(self.schema, Mapping):
            raise GenerationError(
                "a json_schema response format needs its schema, a JSON object (dict), got "
                f"{type(self.schema).__name__}"
            )
        else:
            schema = _closed(self.schema)
        try:
            text = json.dumps(schema)
        except (TypeError, ValueError) as exc:
            raise GenerationError(f"response_format: the schema is not JSON: {exc}") from exc
        options = _json_options(self.strict)
        try:
            return str(_llguidance().LLMatcher.grammar_from_json_schema(text, overrides=options))
        except ValueError as exc:
            raise GenerationError(f"response_format: invalid JSON schema: {exc}") from exc

    @classmethod
    def json_object(cls) -> ResponseFormat:
        """Any JSON object."""
        return cls("json_object")

    @classmethod
    def json_schema(cls, schema: Mapping[str, Any], strict: bool = True) -> ResponseFormat:
        """JSON that validates against ``schema`` (see the class docstring for ``strict``)."""
        return cls("json_schema", schema=schema, strict=strict)

    @staticmethod
    def json_rule(schema: Mapping[str, Any], strict: bool = True) -> str:
        """The Lark fragment ``%json {...}`` that embeds ``schema`` in a :meth:`grammar` the way
        :meth:`json_schema` constrains it (one line, closed objects, ``strict``)::

            call = ResponseFormat.json_rule(parameters)
            ResponseFormat.grammar(f'start: "<tool_call>" {call} "</tool_call>"')

        Checked when the grammar is made."""
        if not isinstance(schema, Mapping):
            raise GenerationError(f"a JSON schema must be a dict, got {type(schema).__name__}")
        embedded = {**_closed(schema), "x-guidance": _json_options(strict)}
        try:
            return f"%json {json.dumps(embedded)}"
        except (TypeError, ValueError) as exc:
            raise GenerationError(f"the schema is not JSON: {exc}") from exc

    @classmethod
    def grammar(cls, lark: str) -> ResponseFormat:
        """Text matching the llguidance Lark grammar ``lark`` (``%json {...}`` embeds a
        schema)."""
        return cls("grammar", lark=lark)

    def matcher(self, tokenizer: Tokenizer, vocab_size: int, eos: Collection[int]) -> FormatMatcher:
        """The per-sequence state for a model with ``vocab_size`` logits and ``eos`` ids
        (the grammar is compiled for the tokenizer once, then copied)."""
        return FormatMatcher(self, tokenizer, vocab_size, eos)

    def prepare(self, tokenizer: Tokenizer, vocab_size: int, eos: Collection[int]) -> None:
        """Compile ahead for this model (what the first :meth:`matcher` would do): a server
        calls it off its event loop. :class:`~edge_sdk.GenerationError` if it does not fit."""
        _start_matcher(self, tokenizer, vocab_size, tuple(sorted(eos)))


# Per tokenizer: llguidance's tokenizer for each (vocabulary size, end ids), built once (up to
# a second), and the compiled matchers of the last grammars used, copied for each sequence.
_COMPILED_GRAMMARS = 32
_CACHES: weakref.WeakKeyDictionary[Tokenizer, _TokenizerCache] = weakref.WeakKeyDictionary()
_CACHES_LOCK = threading.Lock()


class _TokenizerCache:
    def __init__(self) -> None:
        self.tokenizers: dict[tuple[int, tuple[int, ...]], Any] = {}
        self.matchers: OrderedDict[tuple[int, tuple[int, ...], str], Any] = OrderedDict()


def _start_matcher(
    fmt: ResponseFormat, tokenizer: Tokenizer, vocab_size: int, eos: tuple[int, ...]
) -> tuple[Any, Any]:
    """A fresh llguidance matcher for ``fmt`` (at the grammar's start) and its tokenizer.
    Building and compiling run outside the lock (they drop the GIL), so a request whose
    grammar is cached never waits for another one's compile."""
    llg = _llguidance()
    key = (max(vocab_size, tokenizer.vocab_size), eos)
    grammar_key = (key[0], key[1], fmt._grammar)
    with _CACHES_LOCK:
        cache = _CACHES.setdefault(tokenizer, _TokenizerCache())
        ll_tokenizer = cache.tokenizers.get(key)
        matcher = cache.matchers.get(grammar_key)
        if matcher is not None:
            cache.matchers.move_to_end(grammar_key)
            return matcher.deep_copy(), ll_tokenizer
    if ll_tokenizer is None:
        try:  # ids past the tokenizer's own (a padded embedding) are never allowed
            ll_tokenizer = llg.LLTokenizer(
                tokenizer.to_str(), n_vocab=key[0], eos_token=list(eos) or None
            )
        except (ValueError, RuntimeError) as exc:
            raise GenerationError(
                f"structured output cannot use this bundle's tokenizer: {exc}"
            ) from exc
        with _CACHES_LOCK:
            ll_tokenizer = cache.tokenizers.setdefault(key, ll_tokenizer)
    matcher = llg.LLMatcher(ll_tokenizer, fmt._grammar, log_level=0)
    if matcher.is_error():
        raise GenerationError(f"response_format does not fit this model: {matcher.get_error()}")
    with _CACHES_LOCK:
        cache.matchers[grammar_key] = matcher
        if len(cache.matchers) > _COMPILED_GRAMMARS:
            cache.matchers.popitem(last=False)
    return matcher.deep_copy(), ll_tokenizer


class FormatMatcher:
    """One sequence's place in a :class:`ResponseFormat`'s grammar: :meth:`restrict` the
    logits, :meth:`advance` with the picked token; :attr:`done` once nothing can follow."""

    def __init__(
        self, fmt: ResponseFormat, tokenizer: Tokenizer, vocab_size: int, eos: Collection[int]
    ) -> None:
        self._matcher, ll_tokenizer = _start_matcher(fmt, tokenizer, vocab_size, tuple(sorted(eos)))
        self._vocab = vocab_size
        words = (ll_tokenizer.vocab_size + 31) // 32
        self._bits = np.zeros(words * 4, dtype=np.uint8)  # one bit per token, little-endian

    def allowed(self) -> np.ndarray:
        """[vocab] bool: the tokens the grammar allows next."""
        self._matcher.unsafe_compute_mask_ptr(self._bits.ctypes.data, self._bits.nbytes)
        return np.unpackbits(self._bits, count=self._vocab, bitorder="little").view(bool)

    def restrict(self, logits: np.ndarray, greedy: bool) -> np.ndarray:
        """``logits`` [vocab] with the forbidden tokens at ``-inf`` (a new array; ``logits``
        itself when ``greedy`` and its most likely token is allowed: the pick is the same)."""
        if greedy and self._matcher.validate_tokens([int(np.argmax(logits))]) == 1:
            return logits
        allowed = self.allowed()
        if not allowed.any():  # the grammar failed (a limit): let the pick end it in advance()
            return logits
        masked = np.full_like(logits, -np.inf)
        np.copyto(masked, logits, where=allowed)  # about twice as fast as np.where here
        return masked

    def advance(self, token: int) -> None:
        """Move past ``token`` (a token the grammar refuses ends it: :attr:`done`)."""
        if not self._matcher.consume_token(token):
            _log.warning("structured output stopped early: %s", self._matcher.get_error())

    @property
    def done(self) -> bool:
        """Whether the grammar is complete (or failed): nothing more may follow."""
        return bool(self._matcher.is_stopped())
