"""response_format through a real edge-serve and the real openai client: parse() with a Pydantic
model, streams, a cut by max_tokens, /v1/completions, and the 400s for bad formats."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field

from tests.chat_bundles import THINKING_TEMPLATE, with_chat_template
from tests.serve.served import MODEL, Served, running_server

SCHEMA_PARAM = "response_format.json_schema"
MESSAGES = [{"role": "user", "content": "Describe a pet as JSON."}]
PET_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 16},
        "kind": {"enum": ["cat", "dog", "bird"]},
    },
    "required": ["name", "kind"],
}


class Pet(BaseModel):
    name: str = Field(max_length=16)
    kind: Literal["cat", "dog", "bird"]
    age: int = Field(ge=0, le=30)


class Household(BaseModel):
    city: str = Field(max_length=24)
    pets: list[Pet] = Field(max_length=3)


@pytest.fixture(scope="module")
def served(demo_bundle_int8: Path) -> Iterator[Served]:
    with running_server(demo_bundle_int8) as server:
        yield server


def _json_schema(schema: Any, **more: Any) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "pet", "schema": schema, **more}}


@pytest.mark.parametrize("model", [Pet, Household])
def test_parse_with_a_pydantic_model(served: Served, model: type[BaseModel]) -> None:
    reply = served.client().chat.completions.parse(
        model=MODEL,
        messages=MESSAGES,  # type: ignore[arg-type]
        response_format=model,
        max_tokens=200,
        temperature=0.8,
        seed=3,
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "stop"
    assert isinstance(choice.message.parsed, model)


def test_a_stream_is_json_and_ends_with_stop(served: Served) -> None:
    stream = served.client().chat.completions.create(
        model=MODEL,
        messages=MESSAGES,  # type: ignore[arg-type]
        response_format=_json_schema(PET_SCHEMA, strict=True),  # type: ignore[arg-type]
        max_tokens=200,
        stream=True,
    )
    chunks = [c for c in stream if c.choices]
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert set(json.loads(text)) == {"name", "kind"}
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_max_tokens_cuts_the_json_with_length(served: Served) -> None:
    reply = served.client().chat.completions.create(
        model=MODEL,
        messages=MESSAGES,  # type: ignore[arg-type]
        response_format=_json_schema(PET_SCHEMA),  # type: ignore[arg-type]
        max_tokens=3,
    )
    content = reply.choices[0].message.content or ""
    assert reply.choices[0].finish_reason == "length" and content.startswith('{"')
    with pytest.raises(json.JSONDecodeError):
        json.loads(content)


def test_completions_take_response_format_as_an_extension(served: Served) -> None:
    with served.http() as http:
        response = http.post(
            "/v1/completions",
            json={"prompt": "Once", "max_tokens": 200, "response_format": _json_schema(PET_SCHEMA)},
        )
    assert response.status_code == 200, response.text
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "stop" and set(json.loads(choice["text"])) == {"name", "kind"}


def test_not_strict_ignores_an_unsupported_keyword(served: Served) -> None:
    schema = {"type": "array", "items": {"enum": [1, 2]}, "maxItems": 2, "uniqueItems": True}
    with served.http() as http:
        body = {"messages": MESSAGES, "max_tokens": 50}
        strict = http.post(
            "/v1/chat/completions", json={**body, "response_format": _json_schema(schema)}
        )
        lenient = http.post(
            "/v1/chat/completions",
            json={**body, "response_format": _json_schema(schema, strict=False)},
        )
    assert strict.status_code == 400 and "strict: false" in strict.json()["error"]["message"]
    assert lenient.status_code == 200, lenient.text
    assert isinstance(json.loads(lenient.json()["choices"][0]["message"]["content"]), list)


@pytest.mark.parametrize(
    ("response_format", "param", "code", "says"),
    [
        (_json_schema({"type": "wat"}), f"{SCHEMA_PARAM}.schema", "invalid_value", "wat"),
        (
            _json_schema({"type": "array", "uniqueItems": True}),
            "response_format.json_schema.schema",
            "invalid_value",
            "uniqueItems",
        ),
        (
            _json_schema({"oneOf": [{"type": "integer"}, {"type": "number"}]}),
            "response_format.json_schema.schema",
            "invalid_value",
            "oneOf",
        ),
        (
            {"type": "json_schema", "json_schema": {"name": "x"}},
            "response_format.json_schema.schema",
            "missing_required_parameter",
            "schema",
        ),
        (_json_schema([1, 2]), "response_format.json_schema.schema", "invalid_type", "schema"),
        ({"type": "json_schema"}, "response_format.json_schema", "missing_required_parameter", ""),
        (_json_schema({}, strict="yes"), "response_format.json_schema.strict", "invalid_type", ""),
        (_json_schema({}, nmae="x"), "response_format.json_schema.nmae", "unknown_parameter", ""),
        ({"type": "xml"}, "response_format.type", "invalid_value", "json_schema"),
        ("json", "response_format", "invalid_type", "type"),
        ({"type": "json_object", "schema": {}}, "response_format.schema", "unknown_parameter", ""),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_bad_formats_are_400_naming_the_field(
    served: Served, response_format: Any, param: str, code: str, says: str, stream: bool
) -> None:
    with served.http() as http:
        response = http.post(
            "/v1/chat/completions",
            json={"messages": MESSAGES, "response_format": response_format, "stream": stream},
        )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["param"], error["code"]) == (param, code)
    assert says in error["message"] and "Traceback" not in response.text


@pytest.mark.slow
def test_parse_on_smollm2(smollm2_int8: Path) -> None:
    with running_server(smollm2_int8, slots=2) as server:
        reply = server.client().chat.completions.parse(
            model="smollm2",
            messages=[{"role": "user", "content": "Invent a household with two pets, as JSON."}],
            response_format=Household,
            max_tokens=160,
            temperature=0,
        )
    choice = reply.choices[0]
    assert choice.finish_reason == "stop"
    assert isinstance(choice.message.parsed, Household) and choice.message.parsed.pets


def test_a_thinking_template_replies_json_as_content(
    demo_bundle_int8: Path, tmp_path: Path
) -> None:
    """The generation prompt opens <think>, but the grammar shapes the whole reply: it is the
    content, not reasoning."""
    bundle = with_chat_template(demo_bundle_int8, tmp_path / "thinking", THINKING_TEMPLATE)
    with running_server(bundle) as server:
        reply = server.client().chat.completions.create(
            model=MODEL,
            messages=MESSAGES,  # type: ignore[arg-type]
            response_format=_json_schema(PET_SCHEMA),  # type: ignore[arg-type]
            max_tokens=200,
        )
    message = reply.choices[0].message
    assert set(json.loads(message.content or "")) == {"name", "kind"}
    assert getattr(message, "reasoning_content", None) is None
