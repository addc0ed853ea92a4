"""Concurrent clients each get exactly what the prompt alone gives; a client that leaves frees
its slot."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from edge_sdk.runtime import Generator
from tests.serve.served import MODEL, Served, running_server

PROMPTS = [
    "Once upon a time",
    "The little dog",
    "Mia and her mom went",
    "One day, a bird",
    "The sun was",
    "Tom had a red ball.",
    "In the forest,",
    "Lily wanted to",
]


def _samples(served: Served, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    out = {}
    for family in text_string_to_metric_families(served.metrics_text()):
        for sample in family.samples:
            if sample.name == name:
                out[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def test_eight_clients_on_four_slots_get_their_single_request_outputs(
    demo_bundle_int8: Path, reference: Generator
) -> None:
    lengths = [12 + 3 * i for i in range(len(PROMPTS))]
    with running_server(demo_bundle_int8, slots=4) as served:
        client = served.client()

        def ask(i: int) -> tuple[str, int]:
            if i % 2:
                reply = client.completions.create(
                    model=MODEL, prompt=PROMPTS[i], temperature=0, max_tokens=lengths[i]
                )
                assert reply.usage is not None
                return reply.choices[0].text, reply.usage.completion_tokens
            stream = client.completions.create(
                model=MODEL, prompt=PROMPTS[i], temperature=0, max_tokens=lengths[i], stream=True
            )
            return "".join(c.choices[0].text for c in stream if c.choices), -1

        with ThreadPoolExecutor(len(PROMPTS)) as pool:
            answers = list(pool.map(ask, range(len(PROMPTS))))
        assert served.state.engine is not None and served.state.engine.batched
        together = max(len(s.tokens) for s in served.steps if s.kind == "decode")
    assert together > 1  # requests really were decoded in one model call
    for prompt, n, (text, count) in zip(PROMPTS, lengths, answers, strict=True):
        expected = reference.generate(prompt, max_new_tokens=n)
        assert text == expected.text, prompt
        assert count in (-1, len(expected.token_ids))


def test_a_client_that_closes_its_stream_frees_its_slot(demo_bundle_int8: Path) -> None:
    with running_server(demo_bundle_int8, slots=1, step_delay_s=0.01) as served:
        engine = served.state.engine
        assert engine is not None
        client = served.client()
        stream = client.completions.create(
            model=MODEL,
            prompt="Once upon a time",
            max_tokens=400,
            temperature=0,
            stream=True,
            extra_body={"ignore_eos": True},
        )
        received = [next(iter(stream)) for _ in range(3)]
        assert all(c.choices for c in received)
        assert engine.running == 1
        stream.close()  # the client goes away mid-stream
        closed, closed_perf = time.monotonic(), time.perf_counter()
        assert served.wait_for(lambda: engine.running == 0, 5)
        freed_after = time.monotonic() - closed
        # measured: 0 or 1 model call starts after the close (the disconnect is seen at once,
        # the cancel lands before the engine's next step); 3 leaves room for a loaded machine
        assert len([s for s in served.steps if s.start > closed_perf]) <= 3
        finished = _samples(served, "edge_serve_requests_finished_total")
        assert finished == {(("endpoint", "/v1/completions"), ("finish_reason", "cancelled")): 1}
        assert _samples(served, "edge_serve_requests_running") == {(): 0.0}
        # the slot serves the next request at once
        reply = client.completions.create(
            model=MODEL, prompt="The sun was", max_tokens=5, temperature=0
        )
        assert reply.choices[0].finish_reason == "length"
    assert freed_after < 0.5, freed_after


def test_a_client_that_gives_up_on_a_whole_answer_frees_its_slot(demo_bundle_int8: Path) -> None:
    with running_server(demo_bundle_int8, slots=1, step_delay_s=0.01) as served:
        engine = served.state.engine
        assert engine is not None
        body = {"model": MODEL, "prompt": "Once upon a time", "max_tokens": 400, "ignore_eos": True}
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{served.url}/v1/completions", json=body, timeout=0.5)
        assert served.wait_for(lambda: engine.running == 0, 2)
        assert _samples(served, "edge_serve_requests_finished_total") == {
            (("endpoint", "/v1/completions"), ("finish_reason", "cancelled")): 1
        }
        assert served.wait_for(
            lambda: (
                _samples(served, "edge_serve_http_requests_total").get(
                    (("endpoint", "/v1/completions"), ("status", "499"))
                )
                == 1
            ),
            2,
        )
