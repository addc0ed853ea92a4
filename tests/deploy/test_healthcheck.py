"""The image's HEALTHCHECK command, run as Docker runs it, against a real edge-serve."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from tests.serve.served import running_server

from .dockerfile import exec_form, stages


def _healthcheck(port: int) -> int:
    """Exit status of the HEALTHCHECK's command, pointed at ``port`` instead of 8000."""
    command = exec_form(stages()["runtime"].all("HEALTHCHECK")[0])
    assert command[0] == "python3" and sum(":8000/" in part for part in command) == 1
    command = [sys.executable, *(part.replace(":8000/", f":{port}/") for part in command[1:])]
    return subprocess.run(command, check=False, capture_output=True, timeout=30).returncode


def test_healthy_only_when_the_model_is_ready(demo_bundle_int8: Path) -> None:
    gate = threading.Event()
    with running_server(demo_bundle_int8, gate=gate) as served:
        port = int(served.url.rsplit(":", 1)[1])
        assert served.state.phase == "loading"
        assert _healthcheck(port) == 1  # 503 while loading
        gate.set()
        assert served.state.wait_loaded(60) and served.state.phase == "ready"
        assert _healthcheck(port) == 0
    assert _healthcheck(port) == 1  # nothing listens any more


class _EngineBug(BaseException):
    """Escapes the engine's model-call handling, as a bug in the engine itself would."""


def test_unhealthy_when_the_engine_thread_died(demo_bundle_int8: Path) -> None:
    with running_server(demo_bundle_int8) as served:
        port = int(served.url.rsplit(":", 1)[1])
        assert _healthcheck(port) == 0
        engine = served.state.engine
        assert engine is not None

        def fail(step: object) -> None:
            raise _EngineBug("boom")

        engine.add_step_listener(fail)
        with served.http() as http:
            answer = http.post("/v1/completions", json={"prompt": "Once", "max_tokens": 4})
            assert answer.status_code >= 500
            assert served.wait_for(lambda: engine.failed is not None)
            health = http.get("/health")
        assert health.status_code == 503
        assert health.json()["status"] == "failed" and "boom" in health.json()["error"]
        assert _healthcheck(port) == 1  # a liveness probe on /health restarts the pod
