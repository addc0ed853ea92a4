"""edge-serve turns a request body into one GenerationOptions, passed down unchanged."""

from __future__ import annotations

from edge_sdk.runtime import GenerationOptions
from edge_sdk.serve.openai_schema import UNTIL_CONTEXT_FULL, parse_chat, parse_completion


def test_the_server_builds_one_from_the_request_body() -> None:
    body = {"prompt": "Hi", "max_tokens": 5, "stop": "\n", "seed": 2, "top_k": 4}
    assert parse_completion(body).sampling.options == GenerationOptions(
        max_new_tokens=5, temperature=1.0, stop="\n", seed=2, top_k=4
    )
    chat = parse_chat({"messages": [{"role": "user", "content": "Hi"}], "ignore_eos": True})
    assert chat.sampling.options == GenerationOptions(
        max_new_tokens=UNTIL_CONTEXT_FULL, temperature=1.0, ignore_eos=True
    )
