"""Chat templates render as transformers' apply_chat_template does, and travel into the bundle."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_sdk.chat_template import PLAIN_TEMPLATE, ChatTemplate, read_hf_chat_template
from edge_sdk.errors import BundleError, GenerationError

# Held-out templates in the styles real models ship (none is the demo's or SmolLM2's): ChatML with
# a default system turn, Llama 3 headers with bos_token, one using namespace / loop controls /
# tojson / raise_exception / the {% generation %} tag.
CHATML = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
LLAMA3 = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | "
    "trim"
    " + '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% "
    "endif %}"
)
FANCY = """{%- set ns = namespace(turns=0) -%}
{%- for message in messages -%}
  {%- if message['role'] not in ['system', 'user', 'assistant'] -%}
    {{ raise_exception('unknown role ' + message['role']) }}
  {%- endif -%}
  {%- if message['role'] == 'system' %}{% continue %}{% endif -%}
  {%- set ns.turns = ns.turns + 1 -%}
  [{{ ns.turns }}] {{ message['role'] }}: {{ message['content'] | tojson }}
  {%- if message['role'] == 'assistant' %}{% generation %}{{ eos_token }}{% endgeneration %}{% endif %}
{% endfor -%}
{%- if add_generation_prompt %}assistant:{% endif -%}"""  # noqa: E501 - a template line, part of the value

CONVERSATION = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "What is the capital of France? <b>é</b> 你好 🙂"},
    {"role": "assistant", "content": "Paris."},
    {"role": "user", "content": "  And of Spain?  "},
]
SPECIAL = {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}


def _hf_tokenizer(template: str, tokenizer_json: str):  # type: ignore[no-untyped-def]
    from tokenizers import Tokenizer as HFTokenizer
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=HFTokenizer.from_str(tokenizer_json), chat_template=template, **SPECIAL
    )


@pytest.fixture(scope="module")
def tokenizer_json(demo_checkpoint: Path) -> str:
    from edge_sdk.checkpoint import read_checkpoint_metadata

    return str(read_checkpoint_metadata(demo_checkpoint)["tokenizer"])


@pytest.mark.parametrize("template", [CHATML, LLAMA3, FANCY], ids=["chatml", "llama3", "fancy"])
@pytest.mark.parametrize("generation_prompt", [True, False])
def test_render_matches_transformers(
    template: str, generation_prompt: bool, tokenizer_json: str
) -> None:
    want = _hf_tokenizer(template, tokenizer_json).apply_chat_template(
        CONVERSATION, tokenize=False, add_generation_prompt=generation_prompt
    )
    got = ChatTemplate(template, "test", SPECIAL).render(
        CONVERSATION, add_generation_prompt=generation_prompt
    )
    assert got == want


def test_template_errors_are_generation_errors() -> None:
    template = ChatTemplate(FANCY, "test", SPECIAL)
    with pytest.raises(GenerationError, match="unknown role tool"):
        template.render([{"role": "tool", "content": "x"}])
    with pytest.raises(GenerationError, match="needs a 'role'"):
        template.render([{"content": "x"}])
    with pytest.raises(BundleError, match="does not parse"):
        ChatTemplate("{% for %}", "test").render([{"role": "user", "content": "x"}])


def test_the_sandbox_refuses_python_internals() -> None:
    escape = "{{ messages.__class__.__mro__ }}"
    with pytest.raises(GenerationError):
        ChatTemplate(escape, "test").render([{"role": "user", "content": "x"}])


def test_plain_fallback() -> None:
    plain = ChatTemplate.plain()
    assert plain.is_plain and plain.template == PLAIN_TEMPLATE
    assert plain.render(CONVERSATION[1:3]) == (
        f"user: {CONVERSATION[1]['content']}\nassistant: Paris.\nassistant:"
    )


def test_read_from_a_hf_folder(tmp_path: Path) -> None:
    assert read_hf_chat_template(tmp_path) is None
    config = {
        "chat_template": [
            {"name": "default", "template": CHATML},
            {"name": "tool_use", "template": "x"},
        ],
        "bos_token": {"content": "<s>", "lstrip": False},
        "eos_token": "</s>",
    }
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    found = read_hf_chat_template(tmp_path)
    assert found is not None and found.template == CHATML
    assert found.source == "tokenizer_config.json"
    assert found.special_tokens == {"bos_token": "<s>", "eos_token": "</s>"}
    (tmp_path / "chat_template.jinja").write_text(LLAMA3, encoding="utf-8")
    found = read_hf_chat_template(tmp_path)
    assert found is not None and (found.template, found.source) == (LLAMA3, "chat_template.jinja")
