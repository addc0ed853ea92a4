"""Reasoning split: a thinking model's ``<think>...</think>`` block apart from its answer.

Thinking models (Qwen3, DeepSeek-R1, ...) write their reasoning first, in a ``<think>`` block,
then the answer. :class:`ReasoningSplitter` takes the output as it streams, in text deltas of any
size, and returns (reasoning, content) deltas; :func:`split_reasoning` splits a whole text the
same way. The rules:

- The block counts only at the start of the output (after leading whitespace), as in llama.cpp;
  a ``<think>`` later in the answer is answer text. Output without a block is never changed.
- ``opened``: the prompt already opened the block (it ends with ``<think>``, as the templates
  of DeepSeek-R1 and Qwen3-Thinking-2507 do; :func:`prompt_opens_reasoning`). The output is
  then reasoning from its first character up to ``</think>``; a ``<think>`` at its start is
  dropped, as vLLM's Qwen3 parser does.
- No ``</think>`` before the end (the output was cut by ``max_tokens``): everything after the
  opening is reasoning and the answer is empty.
- Whitespace is stripped at both ends of the reasoning and at the start of the answer, as
  llama.cpp's ``--reasoning-format deepseek`` does (vLLM keeps it: ``"\\n...\\n"`` and
  ``"\\n\\nanswer"`` for Qwen3's ``<think>\\n...\\n</think>\\n\\nanswer``).
- A tag split across deltas (``<th`` + ``ink>``) is held back until it is complete or can no
  longer be one; so is whitespace that may turn out to end the reasoning.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_sdk.chat_template import ChatTemplate
from edge_sdk.errors import GenerationError

__all__ = [
    "REASONING_FORMATS",
    "THINK_END",
    "THINK_START",
    "ReasoningDelta",
    "ReasoningSplitter",
    "prompt_opens_reasoning",
    "reasoning_choice",
    "split_reasoning",
    "template_thinks",
]

THINK_START = "<think>"
THINK_END = "</think>"

#: ``--reasoning-format`` values (llama-server's names): ``auto`` splits when the chat template
#: is a thinking model's, ``deepseek`` always, ``none`` never (the text as the model wrote it).
REASONING_FORMATS = ("auto", "deepseek", "none")

# states of the splitter
_START = "start"  # nothing but whitespace (or part of <think>) seen yet
_REASONING_LEAD = "reasoning-lead"  # in the block, leading whitespace dropped
_REASONING = "reasoning"
_CONTENT_LEAD = "content-lead"  # after </think>, leading whitespace dropped
_CONTENT = "content"


@dataclass(frozen=True)
class ReasoningDelta:
    """What one piece of output adds to the reasoning and to the answer (either may be "")."""

    reasoning: str = ""
    content: str = ""


class ReasoningSplitter:
    """Splits streamed output into reasoning and answer (rules in the module docstring).

    Call :meth:`push` with each text delta and :meth:`flush` once at the end; :attr:`reasoning`
    and :attr:`content` hold everything returned so far.
    """

    def __init__(self, opened: bool = False) -> None:
        self.opened = opened
        self.reasoning = ""
        self.content = ""
        self._state = _START
        self._held = ""  # text not yet assigned: a possible tag, or whitespace

    def push(self, text: str) -> ReasoningDelta:
        """Take the next piece of output; what it adds to the reasoning and the answer."""
        self._held += text
        reasoning: list[str] = []
        content: list[str] = []
        while self._step(reasoning, content):
            pass
        return self._delta("".join(reasoning), "".join(content))

    def flush(self) -> ReasoningDelta:
        """The end of the output: what was held back (a second call returns nothing)."""
        held, self._held = self._held, ""
        if self._state == _START and not self.opened:
            self._state = _CONTENT
            return self._delta("", held)  # no block: the output as it was
        if self._state in (_START, _REASONING_LEAD, _REASONING):
            # only in _REASONING can the held text follow reasoning (its whitespace is inside)
            tail = held.rstrip() if self._state == _REASONING else held.strip()
            self._state = _REASONING
            return self._delta(tail, "")
        return self._delta("", "")

    def _delta(self, reasoning: str, content: str) -> ReasoningDelta:
        self.reasoning += reasoning
        self.content += content
        return ReasoningDelta(reasoning, content)

    def _step(self, reasoning: list[str], content: list[str]) -> bool:
        """Move what can be decided from the held text; whether to look again."""
        held = self._held
        if self._state == _START:
            body = held.lstrip()
            if body.startswith(THINK_START):
                self._held, self._state = body[len(THINK_START) :], _REASONING_LEAD
                return True
            if THINK_START.startswith(body):  # whitespace, or part of the tag: wait
                return False
            self._state = _REASONING_LEAD if self.opened else _CONTENT
            return True
        if self._state in (_REASONING_LEAD, _CONTENT_LEAD):
            body = held.lstrip()
            self._held = body
            if body:
                self._state = _REASONING if self._state == _REASONING_LEAD else _CONTENT
            return bool(body)
        if self._state == _REASONING:
            end = held.find(THINK_END)
            if end >= 0:
                reasoning.append(held[:end].rstrip())
                self._held, self._state = held[end + len(THINK_END) :], _CONTENT_LEAD
                return True
            keep = _undecided_tail(held)
            reasoning.append(held[: len(held) - keep])
            self._held = held[len(held) - keep :]
            return False
        content.append(held)
        self._held = ""
        return False


def _undecided_tail(text: str) -> int:
    """Length of the end of ``text`` that may still be trailing whitespace of the reasoning or
    the start of ``</think>``."""
    tag = next(
        (
            n
            for n in range(min(len(THINK_END) - 1, len(text)), 0, -1)
            if THINK_END.startswith(text[-n:])
        ),
        0,
    )
    rest = text[: len(text) - tag]
    return tag + len(rest) - len(rest.rstrip())


def split_reasoning(text: str, opened: bool = False) -> tuple[str, str]:
    """``text`` (a whole output) as (reasoning, answer), by the module's rules; the reasoning is
    "" when there is no block."""
    body = text.lstrip()
    if body.startswith(THINK_START):
        body = body[len(THINK_START) :]
    elif not opened:
        return "", text
    reasoning, _, content = body.partition(THINK_END)
    return reasoning.strip(), content.lstrip()


def prompt_opens_reasoning(prompt: str) -> bool:
    """Whether a rendered prompt ends inside an opened ``<think>`` block (its template makes the
    model start with reasoning)."""
    return prompt.rstrip().endswith(THINK_START)


def template_thinks(template: ChatTemplate) -> bool:
    """Whether a chat template is a thinking model's (it mentions ``<think>``): where the split
    is on by default."""
    return THINK_START in template.template


def reasoning_choice(reasoning_format: str) -> bool | None:
    """Whether a ``--reasoning-format`` splits reasoning: True, False, or None for ``auto``
    (when :func:`template_thinks`)."""
    if reasoning_format not in REASONING_FORMATS:
        raise GenerationError(
            f"the reasoning format must be one of {', '.join(REASONING_FORMATS)}, "
            f"got {reasoning_format!r}"
        )
    return None if reasoning_format == "auto" else reasoning_format == "deepseek"
