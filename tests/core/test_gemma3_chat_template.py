"""Gemma 3's real chat template (its instruction-tuned models') renders as transformers renders
it: a system turn folded into the first user turn, ``model`` for the assistant, trimmed contents,
multimodal content lists (text parts), and its error on turns that do not alternate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edge_sdk.chat_template import ChatTemplate
from edge_sdk.errors import GenerationError

GEMMA3 = (Path(__file__).parent / "fixtures" / "gemma3_chat_template.jinja").read_text(
    encoding="utf-8"
)
SPECIAL = {"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>"}

CONVERSATIONS: dict[str, list[dict[str, Any]]] = {
    "system and two turns": [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "  What is the capital of France? 你好 🙂 "},
        {"role": "assistant", "content": "Paris.\n"},
        {"role": "user", "content": "And of Spain?"},
    ],
    "content parts": [
        {"role": "system", "content": [{"type": "text", "text": "Be kind."}]},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": " Hi "}]},
    ],
    "no system": [{"role": "user", "content": "Hello"}],
}


def _transformers_render(messages: list[dict[str, Any]], generation_prompt: bool) -> str:
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(SPECIAL.values())}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    hf = PreTrainedTokenizerFast(tokenizer_object=backend, chat_template=GEMMA3, **SPECIAL)
    text: str = hf.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=generation_prompt
    )
    return text


@pytest.mark.parametrize("name", sorted(CONVERSATIONS))
@pytest.mark.parametrize("generation_prompt", [True, False])
def test_render_matches_transformers(name: str, generation_prompt: bool) -> None:
    pytest.importorskip("transformers")
    messages = CONVERSATIONS[name]
    got = ChatTemplate(GEMMA3, "test", SPECIAL).render(
        messages, add_generation_prompt=generation_prompt
    )
    assert got == _transformers_render(messages, generation_prompt)
    assert got.startswith("<bos><start_of_turn>user\n")


def test_turns_that_do_not_alternate_are_a_generation_error() -> None:
    template = ChatTemplate(GEMMA3, "test", SPECIAL)
    with pytest.raises(GenerationError, match="must alternate"):
        template.render([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])
