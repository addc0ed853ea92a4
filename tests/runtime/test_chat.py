"""Chat with the bundle's template: exported with the model, applied by Generator.chat() and
edge-run --chat, only the new tokens of a turn run, and a plain fallback without a template."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_sdk.bundle import load_bundle
from edge_sdk.chat_template import CHAT_TEMPLATE_FILE, ChatTemplate
from edge_sdk.runtime import Generator, load
from edge_sdk.runtime.cli import main as edge_run

TEMPLATE = (
    "{% for m in messages %}{{ bos_token }}{{ m['role'] }}:{{ m['content'] }}{{ eos_token }}\n"
    "{% endfor %}{% if add_generation_prompt %}{{ bos_token }}assistant:{% endif %}"
)


@pytest.fixture(scope="module")
def chat_bundle(tmp_path_factory: pytest.TempPathFactory, demo_checkpoint: Path) -> Path:
    """The demo model exported with a chat template (its tokens spelled in the demo's
    vocabulary)."""
    from edge_sdk.exporters import export
    from edge_sdk.exporters.loaders import load_model

    loaded = load_model(demo_checkpoint)
    loaded.chat_template = ChatTemplate(TEMPLATE, "test", {"bos_token": "[", "eos_token": "]"})
    return export(loaded, tmp_path_factory.mktemp("chat") / "demo-chat", "int8").bundle.path


@pytest.fixture(scope="module")
def gen(chat_bundle: Path) -> Iterator[Generator]:
    with load(chat_bundle, "ort-cpu", threads=2) as generator:
        yield generator


def test_the_template_travels_into_the_bundle(chat_bundle: Path, demo_bundle_int8: Path) -> None:
    bundle = load_bundle(chat_bundle)
    assert (chat_bundle / CHAT_TEMPLATE_FILE).read_text() == TEMPLATE
    assert CHAT_TEMPLATE_FILE in bundle.manifest["files"]  # hashed like every file
    assert bundle.manifest["chat"]["special_tokens"] == {"bos_token": "[", "eos_token": "]"}
    assert bundle.chat_template.template == TEMPLATE and not bundle.chat_template.is_plain
    assert load_bundle(demo_bundle_int8).chat_template.is_plain  # no template: the fallback


def test_chat_applies_the_template_and_runs_only_new_tokens(gen: Generator) -> None:
    chat = gen.chat(system="Tell stories.")
    first = chat.send("Tom had a red ball.", max_new_tokens=10, ignore_eos=True).run()
    messages = [
        {"role": "system", "content": "Tell stories."},
        {"role": "user", "content": "Tom had a red ball."},
    ]
    ids1 = gen.chat_ids(messages)
    assert gen.tokenizer.decode(ids1).endswith("[assistant:")
    assert first.stats.prompt_tokens == len(ids1)
    assert first.token_ids == gen.generate(ids1, max_new_tokens=10, ignore_eos=True).token_ids

    chat = gen.chat(system="Tell stories.")  # the generate() above replaced the cache
    chat.send("Tom had a red ball.", max_new_tokens=10, ignore_eos=True).run()
    second = chat.send("Then what?", max_new_tokens=10, ignore_eos=True).run()
    messages += [
        {"role": "assistant", "content": first.text},
        {"role": "user", "content": "Then what?"},
    ]
    assert chat.messages == messages
    ids2 = gen.chat_ids(messages)
    assert second.stats.prompt_tokens < len(ids2) - len(ids1)  # the history stayed in the cache
    assert second.token_ids == gen.generate(ids2, max_new_tokens=10, ignore_eos=True).token_ids


def test_edge_run_chat_uses_the_template(
    chat_bundle: Path,
    demo_bundle_int8: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("Tom had a ball.\n/reset\nHe said\n/exit\nno\n"))
    assert edge_run([str(chat_bundle), "--chat", "--json", "-n", "4", "--ignore-eos"]) == 0
    out, err = capsys.readouterr()
    turns = [json.loads(chunk) for chunk in out.replace("}\n{", "}\x00{").split("\x00")]
    assert len(turns) == 2 and "new conversation" in err
    with load(chat_bundle, "ort-cpu", threads=2) as gen:
        ids = gen.chat_ids([{"role": "user", "content": "He said"}])
        assert turns[1]["stats"]["prompt_tokens"] == len(ids)  # /reset started over
    monkeypatch.setattr(sys, "stdin", io.StringIO("Hello\n"))
    assert edge_run([str(demo_bundle_int8), "--chat", "-n", "3"]) == 0
    assert "no chat template" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        edge_run([str(demo_bundle_int8), "hi", "--system", "x"])
    assert usage.value.code == 2
