"""Health during the load, metrics, the command line, and SIGTERM draining a real process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from edge_sdk.serve.cli import main
from tests.serve.served import MODEL, running_server


def test_health_is_503_while_the_model_loads_then_200(demo_bundle_int8: Path) -> None:
    gate = threading.Event()
    with running_server(demo_bundle_int8, gate=gate) as served:
        loading = httpx.get(f"{served.url}/health")
        assert loading.status_code == 503
        assert loading.json() == {"status": "loading", "model": MODEL}
        with pytest.raises(openai.APIStatusError) as info:
            served.client().completions.create(model=MODEL, prompt="Hi", max_tokens=2)
        assert info.value.status_code == 503 and info.value.code == "model_loading"
        gate.set()
        assert served.state.wait_loaded(60)
        ready = httpx.get(f"{served.url}/health")
        assert ready.status_code == 200
        assert ready.json()["status"] == "ok" and ready.json()["slots"] == 4


def test_metrics_parse_and_count_what_was_served(demo_bundle_int8: Path) -> None:
    with running_server(demo_bundle_int8) as served:
        client = served.client()
        client.completions.create(
            model=MODEL, prompt="Once upon a time", max_tokens=6, temperature=0
        )
        list(
            client.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": "Hi"}],
                max_tokens=5,
                temperature=0,
                stream=True,
                extra_body={"ignore_eos": True},
            )
        )
        httpx.post(f"{served.url}/v1/completions", content=b"{")
        families = {f.name: f for f in text_string_to_metric_families(served.metrics_text())}
    for name in (
        "edge_serve_requests_running",
        "edge_serve_requests_waiting",
        "edge_serve_kv_cache_usage_ratio",
        "edge_serve_kv_cache_bytes",
        "edge_serve_time_to_first_token_seconds",
        "edge_serve_time_per_output_token_seconds",
        "edge_serve_prompt_tokens",
        "edge_serve_generation_tokens",
        "edge_serve_requests_finished",
        "edge_serve_http_requests",
    ):
        assert name in families, name
    assert "edge_serve_request_energy_joules" not in families  # no power sensor here

    def value(family: str, sample: str, **labels: str) -> float:
        return sum(
            s.value
            for s in families[family].samples
            if s.name == sample and labels.items() <= s.labels.items()
        )

    assert value("edge_serve_generation_tokens", "edge_serve_generation_tokens_total") == 11
    assert value("edge_serve_prompt_tokens", "edge_serve_prompt_tokens_total") > 0
    assert (
        value(
            "edge_serve_time_to_first_token_seconds", "edge_serve_time_to_first_token_seconds_count"
        )
        == 2
    )
    assert (
        value(
            "edge_serve_time_per_output_token_seconds",
            "edge_serve_time_per_output_token_seconds_count",
        )
        == 5 + 4
    )
    assert (
        value(
            "edge_serve_requests_finished",
            "edge_serve_requests_finished_total",
            finish_reason="length",
        )
        == 2
    )
    assert (
        value(
            "edge_serve_http_requests",
            "edge_serve_http_requests_total",
            endpoint="/v1/completions",
            status="400",
        )
        == 1
    )


def test_a_non_loopback_host_needs_a_key(
    demo_bundle_int8: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EDGE_SERVE_API_KEY", raising=False)
    with pytest.raises(SystemExit) as info:
        main([str(demo_bundle_int8), "--host", "0.0.0.0"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--api-key" in err and "EDGE_SERVE_API_KEY" in err
    assert main([str(demo_bundle_int8.parent / "missing")]) == 1
    assert "error:" in capsys.readouterr().err


def test_without_the_serve_extra_the_error_names_it(tmp_path: Path) -> None:
    block = "import sys; sys.modules['starlette'] = None; "
    imported = subprocess.run(
        [sys.executable, "-c", block + "from edge_sdk.serve import create_app"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert imported.returncode != 0
    assert "pip install 'edge-sdk-orin[serve]'" in imported.stderr
    command = subprocess.run(
        [
            sys.executable,
            "-c",
            block + f"from edge_sdk.serve.cli import main; sys.exit(main([{str(tmp_path)!r}]))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert command.returncode == 1
    assert command.stderr.strip().count("\n") == 0, command.stderr  # one line, no traceback
    assert "pip install 'edge-sdk-orin[serve]'" in command.stderr


def test_sigterm_drains_running_requests_then_exits_0(demo_bundle_int8: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edge_sdk.serve.cli",
            str(demo_bundle_int8),
            "--port",
            "0",
            "--slots",
            "1",
            "--threads",
            "1",
            "--power-sensor",
            "none",
            "--json",
            "--no-access-log",
            "--log-level",
            "warning",
            "--no-prefix-cache",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        url = json.loads(proc.stdout.readline())["url"]
        ready = json.loads(proc.stdout.readline())
        assert ready["event"] == "ready" and ready["prefix_cache"] is False
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0)
        body = {
            "model": MODEL,
            "prompt": "Once upon a time",
            "max_tokens": 400,
            "temperature": 0,
            "extra_body": {"ignore_eos": True},
        }
        stream = client.completions.create(stream=True, **body)  # type: ignore[call-overload]
        chunks = [next(iter(stream))]
        with ThreadPoolExecutor(3) as pool:  # queued behind it on the one slot
            queued = [pool.submit(client.completions.create, **body) for _ in range(3)]

            def health() -> dict[str, object]:
                return dict(httpx.get(f"{url}/health", timeout=10).json())

            deadline = time.monotonic() + 30
            while health().get("waiting") != 3 and time.monotonic() < deadline:
                time.sleep(0.01)
            proc.send_signal(signal.SIGTERM)
            while health()["status"] != "draining" and time.monotonic() < deadline:
                time.sleep(0.01)
            refused = httpx.post(f"{url}/v1/completions", json={"prompt": "x"}, timeout=10)
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"]["code"] == "draining"
            assert "retry-after" in refused.headers
            chunks += list(stream)
            answers = [f.result(timeout=60) for f in queued]
        assert chunks[-1].choices[0].finish_reason == "length"
        assert sum(len(c.choices[0].text) for c in chunks if c.choices) > 0
        assert all(a.usage is not None and a.usage.completion_tokens == 400 for a in answers)
        # the same prompt each time, yet --no-prefix-cache prefilled every one in full
        assert all(a.usage.prompt_tokens_details.cached_tokens == 0 for a in answers)  # type: ignore[union-attr]
        assert proc.wait(timeout=30) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
