"""A real edge-serve on a free loopback port, in a background thread of the test process.

The engine is the runtime's, on the demo bundle; ``step_delay_s`` makes each engine step that
much longer (a listener that sleeps), standing in for a device whose model is slower than the
2 M-parameter demo, so that a test can act while a request is running; ``settings`` are more
:class:`ServeSettings` fields (``reasoning_format``, ...); ``fused_graph=False`` serves the
standard graph.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai

from edge_sdk.power.sensors import PowerSensor
from edge_sdk.runtime import load
from edge_sdk.runtime.engine import Engine, StepRecord
from edge_sdk.serve import EdgeServer, ServerState, ServeSettings
from edge_sdk.serve.connections import ConnectionLimits
from edge_sdk.serve.server import bind

MODEL = "demo"


@dataclass
class Served:
    url: str
    state: ServerState
    server: EdgeServer
    steps: list[StepRecord]
    api_key: str | None

    def client(self, **kwargs: object) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=f"{self.url}/v1",
            api_key=self.api_key or "none",
            max_retries=0,
            timeout=60,
            **kwargs,
        )  # type: ignore[arg-type]

    def http(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def metrics_text(self) -> str:
        return httpx.get(f"{self.url}/metrics", timeout=10).text

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.005)
        return predicate()


@contextmanager
def running_server(
    bundle: Path,
    *,
    slots: int = 4,
    max_queue: int = 64,
    api_key: str | None = None,
    step_delay_s: float = 0.0,
    open_power: Callable[[], PowerSensor | None] = lambda: None,
    gate: threading.Event | None = None,
    drain_timeout_s: float = 10.0,
    max_context: int | None = None,
    settings: dict[str, Any] | None = None,
    limits: ConnectionLimits | None = None,
    fused_graph: bool = True,
    prefix_cache: bool = True,
    speculative: str | None = None,
) -> Iterator[Served]:
    steps: list[StepRecord] = []

    def load_engine() -> Engine:
        if gate is not None:
            assert gate.wait(60), "the test never opened the loading gate"
        engine = Engine(
            load(bundle, "ort-cpu", threads=1, max_context=max_context, fused_graph=fused_graph),
            slots=slots,
            max_queue=max_queue,
            prefix_cache=prefix_cache,
            speculative=speculative,
        )
        engine.add_step_listener(steps.append)
        if step_delay_s:
            engine.add_step_listener(lambda step: time.sleep(step_delay_s))
        return engine

    state = ServerState(
        ServeSettings(MODEL, api_key, drain_timeout_s, **(settings or {})), load_engine, open_power
    )
    server = EdgeServer(state, log_level="warning", access_log=False, limits=limits)
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    served = Served(f"http://127.0.0.1:{port}", state, server, steps, api_key)
    try:
        assert served.wait_for(lambda: server.started, 30), "uvicorn did not start"
        if gate is None:
            assert state.wait_loaded(60) and state.phase == "ready", state.load_error
        yield served
    finally:
        if gate is not None:
            gate.set()
        server.should_exit = True
        thread.join(30)
        sock.close()
