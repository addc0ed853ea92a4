"""The reasoning splitter: <think> blocks apart from the answer, streamed in deltas of any size."""

from __future__ import annotations

import random

import pytest

from edge_sdk.chat_template import ChatTemplate
from edge_sdk.runtime.reasoning import (
    ReasoningDelta,
    ReasoningSplitter,
    prompt_opens_reasoning,
    split_reasoning,
    template_thinks,
)

QWEN3_REPLY = "<think>\nThe user greets me.\nI greet back.\n</think>\n\nHello! How can I help?"

# (output, opened by the prompt) -> (reasoning, answer)
CASES = {
    "qwen3": (QWEN3_REPLY, False, ("The user greets me.\nI greet back.", "Hello! How can I help?")),
    "empty block (enable_thinking off)": ("<think>\n\n</think>\n\nHi", False, ("", "Hi")),
    "no block: unchanged": ("  Hi <think>x</think>\n", False, ("", "  Hi <think>x</think>\n")),
    "cut by max_tokens": ("<think>\nStep one.\nStep tw", False, ("Step one.\nStep tw", "")),
    "prompt opened it": ("Step one.\n</think>\n\nDone", True, ("Step one.", "Done")),
    "opened, <think> repeated": ("<think>\nr</think>c", True, ("r", "c")),
    "opened, never closed": ("\nall reasoning \n", True, ("all reasoning", "")),
    "later <think> is answer": (
        "<think>a</think>b <think>c</think>",
        False,
        ("a", "b <think>c</think>"),
    ),
    "a partial tag at the end": ("<think>a b \n</th", False, ("a b \n</th", "")),
    "an unopened partial tag": ("<thi", False, ("", "<thi")),
    "a tag-like word": ("<think>a </thinking> b</think>c", False, ("a </thinking> b", "c")),
    "trailing answer whitespace kept": ("<think>r</think>  c \n", False, ("r", "c \n")),
}


def _stream(parts: list[str], opened: bool) -> tuple[list[ReasoningDelta], ReasoningSplitter]:
    splitter = ReasoningSplitter(opened)
    deltas = [splitter.push(p) for p in parts]
    deltas.append(splitter.flush())
    return deltas, splitter


@pytest.mark.parametrize("name", list(CASES))
def test_whole_text(name: str) -> None:
    text, opened, expected = CASES[name]
    assert split_reasoning(text, opened) == expected
    _, splitter = _stream([text], opened)
    assert (splitter.reasoning, splitter.content) == expected


@pytest.mark.parametrize("name", list(CASES))
def test_any_deltas_give_the_same_split(name: str) -> None:
    text, opened, expected = CASES[name]
    rng = random.Random(name)
    cuttings = [[text[i : i + 1] for i in range(len(text))]]  # one character at a time
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(text)), k=min(len(text) - 1, rng.randint(1, 6))))
        cuttings.append([text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)])
    for parts in cuttings:
        deltas, splitter = _stream(parts, opened)
        joined = (
            "".join(d.reasoning for d in deltas),
            "".join(d.content for d in deltas),
        )
        assert joined == expected == (splitter.reasoning, splitter.content), parts


def test_tags_split_across_deltas_are_held_back_then_resolved() -> None:
    splitter = ReasoningSplitter()
    assert splitter.push("\n<th") == ReasoningDelta()  # may be <think>: wait
    assert splitter.push("ink>\nI plan") == ReasoningDelta("I plan")
    assert splitter.push(" more.\n</thi") == ReasoningDelta(" more.")  # "\n</thi" held
    assert splitter.push("nk>\n") == ReasoningDelta()  # the answer's leading newline dropped
    assert splitter.push("\nThe answer") == ReasoningDelta("", "The answer")
    assert splitter.push(" <") == ReasoningDelta("", " <")  # the answer streams unchanged
    assert splitter.flush() == ReasoningDelta()
    assert splitter.flush() == ReasoningDelta()


def test_a_false_start_is_released_at_once() -> None:
    splitter = ReasoningSplitter()
    assert splitter.push("<t") == ReasoningDelta()
    assert splitter.push("able>") == ReasoningDelta("", "<table>")
    opened = ReasoningSplitter(opened=True)
    assert opened.push("x </") == ReasoningDelta("x")
    assert opened.push("b>") == ReasoningDelta(" </b>")


def test_prompt_and_template_detection() -> None:
    assert prompt_opens_reasoning("<|im_start|>assistant\n<think>\n")
    assert not prompt_opens_reasoning("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert not prompt_opens_reasoning("<|im_start|>assistant\n")
    assert template_thinks(ChatTemplate("{{ '<think>' }}", "test"))
    assert not template_thinks(ChatTemplate.plain())
