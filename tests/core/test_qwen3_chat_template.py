"""Qwen3's real chat template renders as transformers renders it: enable_thinking True, False
or unset, with and without the generation prompt, and multi-turn conversations whose earlier
replies hold <think> blocks (the template drops them from earlier turns)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edge_sdk.chat_template import ChatTemplate
from edge_sdk.errors import GenerationError

QWEN3 = (Path(__file__).parent / "fixtures" / "qwen3_chat_template.jinja").read_text(
    encoding="utf-8"
)
SPECIAL = {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}

CONVERSATIONS: dict[str, list[dict[str, Any]]] = {
    "one turn": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is 2 + 2? 你好 🙂"},
    ],
    "earlier reply thought": [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "<think>\nA greeting.\n</think>\n\nHello!"},
        {"role": "user", "content": "What is the capital of France?"},
    ],
    "ends with a reply that thought": [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "<think>\nA greeting.\n</think>\n\nHello!"},
    ],
    "reasoning_content field": [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!", "reasoning_content": "\nA greeting.\n"},
        {"role": "user", "content": "And?"},
        {"role": "assistant", "content": "Ask away.", "reasoning_content": "Be open."},
    ],
}
THINKING: dict[str, dict[str, bool]] = {
    "unset": {},
    "on": {"enable_thinking": True},
    "off": {"enable_thinking": False},
}


def _transformers_render(
    messages: list[dict[str, Any]], generation_prompt: bool, kwargs: dict[str, bool]
) -> str:
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    hf = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.BPE()), chat_template=QWEN3, **SPECIAL
    )
    text = hf.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=generation_prompt, **kwargs
    )
    assert isinstance(text, str)
    return text


@pytest.mark.parametrize("thinking", list(THINKING))
@pytest.mark.parametrize("generation_prompt", [True, False], ids=["prompt", "no-prompt"])
@pytest.mark.parametrize("conversation", list(CONVERSATIONS))
def test_qwen3_renders_as_transformers(
    conversation: str, generation_prompt: bool, thinking: str
) -> None:
    pytest.importorskip("transformers")
    messages, kwargs = CONVERSATIONS[conversation], THINKING[thinking]
    want = _transformers_render(messages, generation_prompt, kwargs)
    got = ChatTemplate(QWEN3, "tokenizer_config.json", SPECIAL).render(
        messages, add_generation_prompt=generation_prompt, **kwargs
    )
    assert got == want
    closed = generation_prompt and thinking == "off"
    assert got.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n") == closed


def test_earlier_reasoning_is_dropped_and_the_last_kept() -> None:
    template = ChatTemplate(QWEN3, "tokenizer_config.json", SPECIAL)
    earlier = template.render(CONVERSATIONS["earlier reply thought"])
    assert "A greeting." not in earlier and "<|im_start|>assistant\nHello!<|im_end|>" in earlier
    last = template.render(
        CONVERSATIONS["ends with a reply that thought"], add_generation_prompt=False
    )
    assert last.endswith(
        "<|im_start|>assistant\n<think>\nA greeting.\n</think>\n\nHello!<|im_end|>\n"
    )


def test_the_renderers_own_variables_are_refused() -> None:
    template = ChatTemplate(QWEN3, "tokenizer_config.json", SPECIAL)
    with pytest.raises(GenerationError, match="'messages' is set by the renderer"):
        template.render(CONVERSATIONS["one turn"], messages=[])
