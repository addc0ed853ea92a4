"""Generator.chat() with a thinking model's template: template variables reach the template,
and the reply is split into reasoning and answer, in events and in the result; edge-run --chat
prints them apart."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_sdk.errors import GenerationError
from edge_sdk.runtime import Generator, load
from edge_sdk.runtime.cli import main as edge_run
from tests.chat_bundles import THINKING_TEMPLATE, with_chat_template

OPTIONS = {"max_new_tokens": 12, "ignore_eos": True}
USER = {"role": "user", "content": "Tom had a red ball."}


@pytest.fixture(scope="module")
def thinking_bundle(demo_bundle_int8: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return with_chat_template(
        demo_bundle_int8, tmp_path_factory.mktemp("thinking") / "bundle", THINKING_TEMPLATE
    )


@pytest.fixture(scope="module")
def gen(thinking_bundle: Path) -> Iterator[Generator]:
    with load(thinking_bundle, "ort-cpu", threads=1) as generator:
        yield generator


def test_a_reply_after_an_opened_think_block_is_reasoning(gen: Generator) -> None:
    chat = gen.chat()
    assert chat.reasoning  # the template mentions <think>: split by default
    stream = chat.send(USER["content"], **OPTIONS)
    events = list(stream)
    result = stream.result
    assert result is not None
    prompt = gen.chat_prompt([USER])
    assert prompt.text.endswith("<|assistant|><think>\n")
    raw = gen.generate(prompt.ids, **OPTIONS)  # the same ids without a split
    assert raw.text.strip() and "</think>" not in raw.text
    assert result.token_ids == raw.token_ids
    # never closed (cut by max_new_tokens): all of it is reasoning, whitespace stripped
    assert result.reasoning == raw.text.strip() == "".join(e.reasoning for e in events)
    assert result.text == "" == "".join(e.text for e in events)

    chat = gen.chat()
    first = chat.send(USER["content"], **OPTIONS).run()
    chat.send("Then?", **OPTIONS).run()
    assert chat.messages[1] == {
        "role": "assistant",
        "content": "",
        "reasoning_content": first.reasoning,
    }


def test_enable_thinking_false_reaches_the_template(gen: Generator) -> None:
    chat = gen.chat(template_kwargs={"enable_thinking": False})
    result = chat.send(USER["content"], **OPTIONS).run()
    prompt = gen.chat_prompt([USER], template_kwargs={"enable_thinking": False})
    assert prompt.text.endswith("<think>\n\n</think>\n\n")
    assert result.stats.prompt_tokens == len(prompt.ids) > len(gen.chat_ids([USER]))
    assert result.reasoning == ""  # split, but there was no reasoning: the answer unchanged
    assert result.text == gen.generate(prompt.ids, **OPTIONS).text


def test_reasoning_off_and_bad_variables(gen: Generator) -> None:
    result = gen.chat(reasoning=False).send(USER["content"], **OPTIONS).run()
    assert result.reasoning is None
    assert result.text == gen.generate(gen.chat_ids([USER]), **OPTIONS).text
    with pytest.raises(GenerationError, match="'add_generation_prompt' is set by the renderer"):
        gen.chat(template_kwargs={"add_generation_prompt": False}).send("hi")


def _turns(out: str) -> list[dict[str, object]]:
    return [json.loads(chunk) for chunk in out.replace("}\n{", "}\x00{").split("\x00")]


def test_edge_run_chat_prints_reasoning_apart(
    thinking_bundle: Path,
    gen: Generator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run = [str(thinking_bundle), "--chat", "-n", "12", "--ignore-eos"]
    reasoning = gen.chat().send(USER["content"], **OPTIONS).run().reasoning
    assert reasoning
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{USER['content']}\n"))
    assert edge_run(run) == 0
    out, err = capsys.readouterr()
    assert out == "\n" and reasoning in err  # the reasoning on stderr, the (empty) answer on stdout

    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{USER['content']}\n"))
    assert edge_run([*run, "--hide-reasoning"]) == 0
    assert reasoning not in capsys.readouterr().err

    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{USER['content']}\n{USER['content']}\n"))
    off = '{"enable_thinking": false}'
    assert edge_run([*run, "--json", "--chat-template-kwargs", off]) == 0
    turns = _turns(capsys.readouterr().out)
    assert turns[0]["reasoning"] == "" and turns[0]["text"]

    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{USER['content']}\n"))
    assert edge_run([*run, "--json", "--reasoning-format", "none"]) == 0
    (turn,) = _turns(capsys.readouterr().out)
    assert "reasoning" not in turn and str(turn["text"]).strip() == reasoning

    for bad in (["--chat-template-kwargs", "[1]"], ["--reasoning-format", "xml"]):
        with pytest.raises(SystemExit) as usage:
            edge_run([*run, *bad])
        assert usage.value.code == 2
    with pytest.raises(SystemExit) as usage:
        edge_run([str(thinking_bundle), "hi", "--hide-reasoning"])
    assert usage.value.code == 2
