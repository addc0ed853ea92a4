"""/v1/chat/completions renders the bundle's own chat template exactly as transformers does."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest

from edge_sdk.runtime import Generator
from tests.chat_bundles import with_chat_template
from tests.serve.served import MODEL, running_server

# held out: written here, never seen by the code under test until this test puts it in a bundle
TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}{% set system = messages[0]['content'] %}"
    "{% set messages = messages[1:] %}{% else %}{% set system = 'Be brief.' %}{% endif -%}"
    "<|system|>\n{{ system | trim }}{{ eos_token }}\n"
    "{% for message in messages %}"
    "{% if message['role'] not in ['user', 'assistant'] %}"
    "{{ raise_exception('roles must be user or assistant') }}{% endif %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}{{ eos_token }}\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
MESSAGES = [
    {"role": "system", "content": "  You tell stories.  "},
    {"role": "user", "content": "A dog?"},
    {"role": "assistant", "content": "Once upon a time, there was a dog."},
    {"role": "user", "content": "More!"},
]


@pytest.fixture(scope="module")
def templated_bundle(demo_bundle_int8: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("templated") / "bundle"
    return with_chat_template(demo_bundle_int8, folder, TEMPLATE, {"eos_token": "<|endoftext|>"})


def test_chat_uses_the_bundles_template_as_transformers_renders_it(
    templated_bundle: Path, reference: Generator
) -> None:
    transformers = pytest.importorskip("transformers")
    hf = transformers.PreTrainedTokenizerFast(
        tokenizer_file=str(templated_bundle / "tokenizer.json"), eos_token="<|endoftext|>"
    )
    text = hf.apply_chat_template(
        MESSAGES, chat_template=TEMPLATE, tokenize=False, add_generation_prompt=True
    )
    ids = hf(text, add_special_tokens=False)["input_ids"]
    expected = reference.generate(ids, max_new_tokens=16)  # same weights, same ids
    with running_server(templated_bundle) as served:
        client = served.client()
        reply = client.chat.completions.create(
            model=MODEL, messages=MESSAGES, max_tokens=16, temperature=0
        )
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(
                model=MODEL,
                max_tokens=4,
                messages=[{"role": "tool", "tool_call_id": "call_1", "content": "x"}],
            )
    assert reply.usage is not None and reply.usage.prompt_tokens == len(ids)
    assert reply.choices[0].message.content == expected.text
    assert "roles must be user or assistant" in str(info.value)
