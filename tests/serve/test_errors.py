"""Every failure is an OpenAI-shaped error with the right status; never a hung connection."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from starlette.routing import Route
from starlette.testclient import TestClient

from edge_sdk.runtime.engine import Engine
from edge_sdk.serve import ServerState, ServeSettings, create_app
from tests.serve.served import MODEL, Served, running_server

KEY = "test-key"
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}


@pytest.fixture(scope="module")
def served(demo_bundle_int8: Path) -> Iterator[Served]:
    with running_server(demo_bundle_int8, api_key=KEY) as server:
        yield server


def _error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    assert "Traceback" not in response.text
    if code is not None:
        assert error["code"] == code
    return error


@pytest.mark.parametrize(
    ("change", "param", "code"),
    [
        ({"n": 2}, "n", "unsupported_value"),
        ({"temperature": -1}, "temperature", "invalid_value"),
        ({"temperature": "hot"}, "temperature", "invalid_type"),
        ({"top_p": 0}, "top_p", "invalid_value"),
        ({"max_tokens": 0}, "max_tokens", "invalid_value"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "invalid_value"),
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs", "invalid_value"),
        (
            {"tools": [{"type": "function", "function": {"name": "f"}}]},
            "tools",
            "unsupported_value",  # the demo's template renders no tools
        ),
        (
            {"tools": [{"type": "function", "function": {"description": "no name"}}]},
            "tools[0].function.name",
            "missing_required_parameter",
        ),
        (
            {"messages": [{"role": "tool", "content": "18 C"}]},
            "messages[0].tool_call_id",
            "missing_required_parameter",
        ),
        ({"response_format": {"type": "yaml"}}, "response_format.type", "invalid_value"),
        ({"presence_penalty": 0.5}, "presence_penalty", "unsupported_parameter"),
        ({"stream_options": {"include_usage": True}}, "stream_options", "invalid_value"),
        ({"max_tokenz": 3}, "max_tokenz", "unknown_parameter"),
        ({"messages": []}, "messages", "invalid_type"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role", "invalid_value"),
    ],
)
def test_bad_fields_are_400_naming_the_field(
    served: Served, change: dict[str, Any], param: str, code: str
) -> None:
    with served.http() as http:
        error = _error(http.post("/v1/chat/completions", json={**CHAT, **change}), 400, code)
    assert error["param"] == param and error["type"] == "invalid_request_error"


def test_harmless_fields_at_their_defaults_are_accepted(served: Served) -> None:
    reply = served.client().chat.completions.create(
        model=MODEL,
        messages=CHAT["messages"],
        max_completion_tokens=3,
        n=1,
        logprobs=False,
        presence_penalty=0,
        frequency_penalty=0,
        user="u",
        store=False,
        tools=[],
        response_format={"type": "text"},
        metadata={"a": "b"},
    )
    assert reply.usage is not None and reply.usage.completion_tokens <= 3


def test_bad_json_and_not_an_object(served: Served) -> None:
    with served.http() as http:
        _error(http.post("/v1/chat/completions", content=b"{not json"), 400, "invalid_json")
        _error(http.post("/v1/completions", content=b"[1, 2]"), 400, "invalid_type")
        _error(http.post("/v1/completions", json={"prompt": ["a", "b"]}), 400, "unsupported_value")


@pytest.mark.parametrize(
    ("route", "body", "param"),
    [
        (
            "/v1/chat/completions",
            b'{"model": "demo", "messages": [{"role": "user", "content": "hi \\udcff"}]}',
            "messages[0].content",
        ),
        ("/v1/completions", b'{"prompt": "Once \\ud800 upon"}', "prompt"),
        ("/v1/completions", b'{"prompt": "Once", "stop": ["a", "\\udfff"]}', "stop[1]"),
        ("/v1/chat/completions", b'{"messages": [], "\\udcff": 1}', "body"),
    ],
)
def test_a_lone_surrogate_is_400_naming_the_field(
    served: Served, route: str, body: bytes, param: str
) -> None:
    with served.http() as http:
        error = _error(http.post(route, content=body), 400, "invalid_value")
    assert error["param"] == param and "surrogate" in error["message"]


def test_deeply_nested_json_is_400_naming_the_field(served: Served) -> None:
    deep = 100_000
    body = b'{"model": "d[e]ep{", "messages": ' + b"[" * deep + b"]" * deep + b', "n": 1}'
    mild = {**CHAT, "chat_template_kwargs": {"x": [[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]}}
    too_deep: Any = 1
    for _ in range(200):  # parses (under Python's recursion limit), refused all the same
        too_deep = [too_deep]
    with served.http() as http:
        error = _error(http.post("/v1/chat/completions", content=body), 400, "invalid_value")
        assert error["param"] == "messages" and "64 levels" in error["message"]
        later = {**CHAT, "chat_template_kwargs": {"x": too_deep}}
        error = _error(http.post("/v1/chat/completions", json=later), 400, "invalid_value")
        assert error["param"] == "chat_template_kwargs"
        assert http.post("/v1/chat/completions", json=mild).status_code == 200
        assert http.get("/health").status_code == 200


def test_prompt_longer_than_the_context(served: Served) -> None:
    long = "Once upon a time, there was a little girl. " * 80
    with pytest.raises(openai.BadRequestError) as info:
        served.client().chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": long}], max_tokens=4
        )
    assert info.value.code == "context_length_exceeded"
    assert "512" in info.value.message


def test_wrong_or_missing_key_is_401(served: Served) -> None:
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{served.url}/v1", api_key="wrong", max_retries=0).models.list()
    _error(httpx.post(f"{served.url}/v1/chat/completions", json=CHAT), 401, "invalid_api_key")
    assert httpx.get(f"{served.url}/health").status_code == 200  # health needs no key


def test_unknown_route_and_method_are_404_and_405(served: Served) -> None:
    with served.http() as http:
        _error(http.get("/v2/nothing"), 404, "not_found")
        _error(http.get("/v1/chat/completions"), 405, "method_not_allowed")
        _error(http.get("/v1/models/other-model"), 404, "model_not_found")


def test_queue_full_is_429_with_retry_after(demo_bundle_int8: Path) -> None:
    with running_server(demo_bundle_int8, slots=1, max_queue=1, step_delay_s=0.01) as served:
        engine = served.state.engine
        assert engine is not None
        body = {**CHAT, "max_tokens": 300, "ignore_eos": True}
        with served.http() as http:
            threads = [
                threading.Thread(
                    target=http.post, args=("/v1/chat/completions",), kwargs={"json": body}
                )
                for _ in range(2)
            ]
            threads[0].start()
            assert served.wait_for(lambda: engine.running == 1)
            threads[1].start()
            assert served.wait_for(lambda: engine.waiting == 1)
            response = http.post("/v1/chat/completions", json=CHAT)
            _error(response, 429, "queue_full")
            assert int(response.headers["retry-after"]) >= 1
            served.state.cancel_all()
            for thread in threads:
                thread.join(30)


def test_draining_is_503_with_retry_after(demo_bundle_int8: Path) -> None:
    with running_server(demo_bundle_int8, slots=1, step_delay_s=0.01) as served:
        client = served.client()
        stream = client.completions.create(
            model=MODEL,
            prompt="Once",
            max_tokens=60,
            temperature=0,
            stream=True,
            extra_body={"ignore_eos": True},
        )
        first = next(iter(stream))
        served.server.drain_and_exit()  # what SIGTERM does
        assert served.wait_for(lambda: served.state.phase == "draining")
        with served.http() as http:
            response = http.post("/v1/completions", json={"prompt": "x", "max_tokens": 2})
            _error(response, 503, "draining")
            assert int(response.headers["retry-after"]) >= 1
            assert http.get("/health").json()["status"] == "draining"
        rest = list(stream)  # the running request finishes
        assert first.choices and rest[-1].choices[0].finish_reason == "length"


def test_an_unexpected_exception_is_500_without_a_traceback() -> None:
    def broken(request: object) -> None:
        raise RuntimeError("secret internals")

    def never_loaded() -> Engine:
        raise AssertionError("the lifespan (loading) does not run in this test")

    state = ServerState(ServeSettings(MODEL), never_loaded)
    app = create_app(state)
    app.router.routes.append(Route("/broken", broken))
    # without `with`, the lifespan (which would load a model) does not run
    response = TestClient(app, raise_server_exceptions=False).get("/broken")
    error = _error(response, 500, "internal_error")
    assert "secret internals" not in response.text and error["type"] == "server_error"
