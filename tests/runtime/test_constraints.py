"""ResponseFormat and FormatMatcher: checked when made, masks that the real demo model follows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_sdk import GenerationError
from edge_sdk.runtime import Engine, GenerationOptions, Generator, ResponseFormat, load
from tests.chat_bundles import THINKING_TEMPLATE, with_chat_template
from tests.runtime.schemas import SCHEMAS

PROMPT = "Once upon a time"
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 24},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "pet": {"enum": ["cat", "dog", "fish"]},
    },
    "required": ["name", "age", "pet"],
}


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: ResponseFormat.json_schema({"type": "wat"}), "invalid JSON schema: Invalid type"),
        (
            lambda: ResponseFormat.json_schema({"type": "array", "uniqueItems": True}),
            r'Unimplemented keys: \["uniqueItems"\]',
        ),
        (lambda: ResponseFormat.json_schema("{}"), "needs its schema, a JSON object"),  # type: ignore[arg-type]
        (lambda: ResponseFormat.json_schema({"x": {1, 2}}), "the schema is not JSON"),
        (lambda: ResponseFormat.grammar("start: nope"), 'invalid grammar: .*unknown name: "nope"'),
        (lambda: ResponseFormat.grammar(""), "needs its Lark grammar text"),
        (lambda: ResponseFormat("yaml"), "kind must be one of"),  # type: ignore[arg-type]
        (lambda: GenerationOptions(response_format={"type": "json_object"}), "ResponseFormat"),
    ],
)
def test_bad_formats_raise_one_clear_error(make: Any, message: str) -> None:
    with pytest.raises(GenerationError, match=message):
        make()


def test_not_strict_ignores_what_it_cannot_enforce() -> None:
    fmt = ResponseFormat.json_schema({"type": "array", "uniqueItems": True}, strict=False)
    assert fmt.kind == "json_schema" and not fmt.strict
    assert hash(fmt) == hash(ResponseFormat.json_schema({"type": "array"}, strict=False))


def test_mask_allows_only_what_the_grammar_does(gen_int8: Generator) -> None:
    vocab = gen_int8.bundle.config.vocab_size
    assert vocab > gen_int8.tokenizer.vocab_size  # the demo's ids past its tokenizer
    matcher = ResponseFormat.json_schema(PERSON).matcher(
        gen_int8.tokenizer, vocab, gen_int8.eos_token_ids
    )
    allowed = matcher.allowed()
    assert allowed.shape == (vocab,)
    assert [gen_int8.tokenizer.decode([int(i)]) for i in np.flatnonzero(allowed)] == ["{"]
    logits = np.zeros(vocab, dtype=np.float32)
    logits[5] = 9.0  # the most likely token is refused: the mask applies
    masked = matcher.restrict(logits, greedy=True)
    assert np.isneginf(masked[~allowed]).all() and (masked[allowed] == 0).all()
    brace = int(np.flatnonzero(allowed)[0])
    logits[brace] = 20.0  # allowed: greedy skips the mask, same pick
    assert matcher.restrict(logits, greedy=True) is logits
    for token in gen_int8.encode('{"name": "Al", "age": 7, "pet": "cat"}', False):
        assert not matcher.done
        matcher.advance(token)
    assert matcher.done


def test_generator_greedy_output_parses_and_ends_with_the_grammar(gen_int8: Generator) -> None:
    result = gen_int8.generate(
        PROMPT, response_format=ResponseFormat.json_schema(PERSON), max_new_tokens=200
    )
    value = json.loads(result.text)
    assert set(value) == {"name", "age", "pet"} and value["pet"] in {"cat", "dog", "fish"}
    assert result.stop_reason == "stop"
    plain = gen_int8.generate(PROMPT, max_new_tokens=8)
    assert not plain.text.startswith("{")  # the constraint, not the model, made it JSON


def test_engine_requests_have_their_own_format(demo_bundle_int8: Path) -> None:
    with Engine(load(demo_bundle_int8, "ort-cpu", threads=2), slots=3) as engine:
        _three_requests(engine)


def _three_requests(engine: Engine) -> None:
    options = GenerationOptions(max_new_tokens=120, temperature=0.9, seed=4)
    json_request = engine.submit(
        PROMPT, options=options.replace(response_format=ResponseFormat.json_schema(PERSON))
    )
    plain_request = engine.submit(PROMPT, options=options)
    grammar_request = engine.submit(
        PROMPT,
        options=options.replace(response_format=ResponseFormat.grammar('start: "yes" | "no"')),
    )
    assert set(json.loads(json_request.wait().text)) == {"name", "age", "pet"}
    assert grammar_request.wait().text in {"yes", "no"}
    assert grammar_request.wait().stop_reason == "stop"
    assert not plain_request.wait().text.startswith("{")


def test_every_output_parses_and_validates(demo_bundle_int8: Path) -> None:
    """The schema set on the demo model, sampled (temperature 1, a seed per schema) so that the
    outputs vary: every one is complete JSON that validates."""
    jsonschema = pytest.importorskip("jsonschema")
    with Engine(load(demo_bundle_int8, "ort-cpu", threads=2), slots=4, max_queue=64) as engine:
        requests = {
            name: engine.submit(
                PROMPT,
                max_new_tokens=300,
                temperature=1.0,
                seed=seed,
                response_format=ResponseFormat.json_schema(schema),
            )
            for seed, (name, schema) in enumerate(SCHEMAS.items())
        }
        results = {name: request.wait() for name, request in requests.items()}
    assert len(results) >= 20
    for name, result in results.items():
        assert result.stop_reason in ("stop", "eos"), (name, result.text)
        jsonschema.validate(json.loads(result.text), SCHEMAS[name])


def test_without_llguidance_the_runtime_imports_and_the_error_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['llguidance'] = None\n"
        "import edge_sdk, edge_sdk.runtime as rt\n"
        "print(rt.GenerationOptions(max_new_tokens=3).max_new_tokens)\n"
        "try:\n"
        "    rt.ResponseFormat.json_object()\n"
        "except edge_sdk.BackendUnavailableError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.startswith("3\n")
    assert "structured output (response_format) needs the Python package 'llguidance'" in out
    assert "pip install 'edge-sdk-orin[structured]'" in out


def test_a_grammar_embeds_a_schema_as_json_schema_does(gen_int8: Generator) -> None:
    rule = ResponseFormat.json_rule(PERSON)
    fmt = ResponseFormat.grammar(f'start: "<call>" {rule} "</call>"')
    result = gen_int8.generate(
        PROMPT, response_format=fmt, max_new_tokens=200, temperature=0.9, seed=2
    )
    assert result.stop_reason == "stop"
    assert result.text.startswith("<call>{") and result.text.endswith("}</call>")
    value = json.loads(result.text.removeprefix("<call>").removesuffix("</call>"))
    assert set(value) == {"name", "age", "pet"}  # closed: no other keys
    assert ", " in result.text and "\n" not in result.text  # one line, as json_schema()
    with pytest.raises(GenerationError, match="uniqueItems"):
        ResponseFormat.grammar(f"start: {ResponseFormat.json_rule({'uniqueItems': True})}")
    ResponseFormat.grammar(f"start: {ResponseFormat.json_rule({'uniqueItems': True}, False)}")


def test_edge_run_json_schema_and_its_errors(
    demo_bundle_int8: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edge_sdk.runtime.cli import main

    schema = tmp_path / "person.json"
    schema.write_text(json.dumps(PERSON))
    assert main([str(demo_bundle_int8), PROMPT, "--json-schema", str(schema), "-n", "200"]) == 0
    assert set(json.loads(capsys.readouterr().out)) == {"name", "age", "pet"}
    schema.write_text('{"type": "array", "uniqueItems": true}')
    for flags, says in [
        (["--json-schema", str(schema)], "Unimplemented keys"),
        (["--json-schema", str(tmp_path / "none.json")], "cannot read it"),
    ]:
        assert main([str(demo_bundle_int8), PROMPT, *flags]) == 1
        err = capsys.readouterr().err
        assert says in err and len(err.strip().splitlines()) == 1


def test_a_thinking_conversation_turn_in_json_is_the_answer(
    demo_bundle_int8: Path, tmp_path: Path
) -> None:
    bundle = with_chat_template(demo_bundle_int8, tmp_path / "thinking", THINKING_TEMPLATE)
    with load(bundle, "ort-cpu", threads=2) as gen:
        chat = gen.chat()
        assert chat.reasoning  # the template opens <think>
        reply = chat.send("A person?", response_format=ResponseFormat.json_schema(PERSON)).run()
        assert set(json.loads(reply.text)) == {"name", "age", "pet"} and not reply.reasoning
        assert chat.send("And now?", max_new_tokens=4).run().reasoning  # the next turn splits
