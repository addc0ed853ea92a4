"""edge-serve with speculative decoding (the server's --speculative): the same greedy text as
plain decoding, a request's ``"speculative": false`` opts out, ``/metrics`` counts drafted and
accepted tokens, and a bad --speculative is one line before the server binds."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_sdk.runtime import Generator
from edge_sdk.serve.cli import main
from tests.serve.served import MODEL, running_server

PROMPT = "The cat sat on the mat. The cat sat on the mat. The cat sat on the"


def test_speculative_server_and_opt_out(demo_bundle_int8: Path, reference: Generator) -> None:
    plain = reference.generate(PROMPT, max_new_tokens=32, ignore_eos=True).text
    ask = dict(model=MODEL, prompt=PROMPT, max_tokens=32, temperature=0)
    with running_server(demo_bundle_int8, slots=2, speculative="ngram") as server:
        client = server.client()
        fast = client.completions.create(extra_body={"ignore_eos": True}, **ask)  # type: ignore[call-overload]
        verified = [s for s in server.steps if s.kind == "verify"]
        server.steps.clear()
        slow = client.completions.create(
            extra_body={"ignore_eos": True, "speculative": False}, **ask
        )  # type: ignore[call-overload]
        metrics = server.metrics_text()
        assert not [s for s in server.steps if s.kind == "verify"]
        bad = server.http().post("/v1/completions", json={**ask, "speculative": "yes please"})
    assert fast.choices[0].text == slow.choices[0].text == plain
    assert fast.usage.completion_tokens == 32
    assert verified and sum(sum(s.tokens.values()) for s in verified) <= 32
    drafted = _metric(metrics, "edge_serve_speculative_drafted_tokens_total")
    accepted = _metric(metrics, "edge_serve_speculative_accepted_tokens_total")
    assert 0 < accepted <= drafted
    assert bad.status_code == 400 and "'speculative' must be true or false" in bad.text


def test_bad_speculative_flag_is_one_line(
    demo_bundle_int8: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(demo_bundle_int8), "--speculative", "eagle", "--port", "0"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "edge-serve: error: unknown speculative method 'eagle'; choose ngram or draft:PATH "
        "(a draft bundle)"
    ]


def _metric(text: str, name: str) -> float:
    return next(
        float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")
    )
