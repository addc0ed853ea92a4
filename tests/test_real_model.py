"""A real instruct model end to end: SmolLM2-135M-Instruct from its GGUF file to int8 and int4
bundles that answer a question through the chat template (Python API, edge-run --chat and
edge-serve with the openai client). The int8 export must pass its accuracy gate unforced."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_sdk.runtime import Generator, load

QUESTION = "What is the capital of France?"
# With the template's default system turn the float model's first token is a near-tie ("The"
# 0.152 against "L" 0.140: a logit gap of 0.08), which any 8-bit rounding can flip; asking for a
# short answer gives it a clear margin (0.65), so the test checks the model, not a coin toss.
SYSTEM = "Answer in one short sentence."
pytestmark = pytest.mark.slow  # two exports of a 135M model: about a minute each on 2 cores


@pytest.fixture(scope="module")
def smollm2_int4(smollm2_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """int4 RTN of weights that were Q4_1 already falls below the int4 gate on this model (the int4
    default, GPTQ + AWQ + act-order with layer 0 at int8, passes it: see the README's table; it
    takes minutes to export, tests/exporters/test_int4_default_real.py): forced."""
    from edge_sdk.exporters import QuantConfig, export

    return export(
        smollm2_gguf,
        tmp_path_factory.mktemp("smollm2") / "int4",
        quant=QuantConfig(method="rtn", bits=4, group_size=128),
        eval_tokens=1024,
        force=True,
    ).bundle.path


@pytest.fixture(scope="module")
def gen_int8(smollm2_int8: Path) -> Iterator[Generator]:
    with load(smollm2_int8, "ort-cpu", threads=2) as generator:
        yield generator


def test_int8_answers_through_the_python_api(gen_int8: Generator) -> None:
    template = gen_int8.chat_template
    assert template.source == "gguf" and "<|im_start|>" in template.template
    assert gen_int8.bundle.manifest["chat"] == template.manifest_entry()
    assert gen_int8.backend.device.endswith("model.ort.onnx")  # the fused graph passed its check
    reply = gen_int8.chat(SYSTEM).send(QUESTION, max_new_tokens=24).run()
    assert "Paris" in reply.text and reply.stop_reason == "eos"  # <|im_end|> ends the turn


def test_int8_answers_through_edge_run_chat(
    smollm2_int8: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from edge_sdk.runtime.cli import main as edge_run

    monkeypatch.setattr(sys, "stdin", io.StringIO(QUESTION + "\n"))
    assert edge_run([str(smollm2_int8), "--chat", "--system", SYSTEM, "-n", "24"]) == 0
    assert "Paris" in capsys.readouterr().out


def test_int4_bundle_runs_and_reports_its_accuracy(smollm2_int4: Path) -> None:
    with load(smollm2_int4, "ort-cpu", threads=2) as gen:
        assert gen.backend.device.endswith("model.ort.onnx")
        reply = gen.chat(SYSTEM).send(QUESTION, max_new_tokens=12).run()
        accuracy = gen.bundle.manifest["accuracy"]["quantized_vs_float"]
    assert reply.stats.new_tokens >= 1 and reply.text
    assert accuracy["gate"].startswith(("passed", "forced")) and accuracy["perplexity_ratio"] > 1


def test_edge_serve_answers_with_the_openai_client(smollm2_int8: Path) -> None:
    from tests.serve.served import running_server

    with running_server(smollm2_int8, slots=2) as server:
        reply = server.client().chat.completions.create(
            model="smollm2",
            messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}],
            max_tokens=24,
            temperature=0,
        )
    assert "Paris" in (reply.choices[0].message.content or "")
    assert reply.choices[0].finish_reason == "stop" and reply.usage is not None
