"""The server's life: loading the engine (after the socket is open), ready, draining, stopped.

Routes read the engine through :meth:`ServerState.ready_engine`, which answers 503 while the
model loads or the server drains. Loading runs on its own thread so ``/health`` answers (503)
during it. The power sampler, when a sensor exists, feeds an
:class:`~edge_sdk.serve.energy.EnergyAccountant` that the engine's steps are charged to.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from edge_sdk.chat_template import ChatTemplate
from edge_sdk.power.sampler import PowerSampler
from edge_sdk.power.sensors import PowerSensor
from edge_sdk.runtime.engine import Engine, Request
from edge_sdk.serve.energy import EnergyAccountant
from edge_sdk.serve.errors import APIError
from edge_sdk.serve.metrics import ServerMetrics

__all__ = ["ServeSettings", "ServerState"]

LOG = logging.getLogger("edge_sdk.serve")


@dataclass(frozen=True)
class ServeSettings:
    """What the routes need to know. ``api_key`` None: no key asked for.
    ``reasoning_format``: ``auto``, ``deepseek`` or ``none`` (``--reasoning-format``);
    ``chat_template_kwargs``: template variables for every chat (a request's own win);
    ``body_timeout_s``: how long a request body may take to arrive (408 after);
    ``chat_template``: renders chats instead of the bundle's (``--chat-template``)."""

    model_name: str
    api_key: str | None = None
    drain_timeout_s: float = 30.0
    retry_after_s: int = 1
    max_body_bytes: int = 8 * 2**20
    body_timeout_s: float = 60.0
    reasoning_format: str = "auto"
    chat_template_kwargs: Mapping[str, Any] = field(default_factory=dict)
    chat_template: ChatTemplate | None = None


class ServerState:
    """The engine behind the routes and its phase: ``loading``, ``ready``, ``draining``,
    ``failed`` or ``stopped``.

    ``load_engine`` makes the (not yet started) engine; ``open_power`` an opened power sensor or
    None. ``on_ready`` / ``on_failure`` are called on the loading thread.
    """

    def __init__(
        self,
        settings: ServeSettings,
        load_engine: Callable[[], Engine],
        open_power: Callable[[], PowerSensor | None] = lambda: None,
    ) -> None:
        self.settings = settings
        self.created = int(time.time())
        self._load_engine = load_engine
        self._open_power = open_power
        self.engine: Engine | None = None
        self.energy: EnergyAccountant | None = None
        self.sensor: PowerSensor | None = None
        self._sampler: PowerSampler | None = None
        self.phase = "loading"
        self.load_error: BaseException | None = None
        self.in_flight = 0  # HTTP requests being answered (changed on the event loop only)
        self.requests: set[Request] = set()  # engine requests not finished
        self.on_ready: Callable[[ServerState], None] | None = None
        self.on_failure: Callable[[BaseException], None] | None = None
        self.metrics = ServerMetrics(lambda: self.engine, lambda: self.energy)
        self._lock = threading.Lock()
        self._loader: threading.Thread | None = None

    # -- loading ----------------------------------------------------------------------------------
    def start_loading(self) -> None:
        """Load on a background thread (once)."""
        if self._loader is None:
            self._loader = threading.Thread(target=self._load, name="edge-serve-load", daemon=True)
            self._loader.start()

    def wait_loaded(self, timeout: float | None = None) -> bool:
        """Block until loading ended (ready or failed); False on timeout."""
        if self._loader is not None:
            self._loader.join(timeout)
        return self._loader is not None and not self._loader.is_alive()

    def _load(self) -> None:
        sensor: PowerSensor | None = None
        engine: Engine | None = None
        try:
            sensor = self._open_power()
            engine = self._load_engine()
            if sensor is not None:
                self.sensor, self.energy = sensor, EnergyAccountant(sensor.kind)
                engine.add_step_listener(self.energy.on_step)
                self._sampler = PowerSampler(sensor, on_sample=self.energy.add_reading).start()
            engine.start()
        except Exception as exc:  # noqa: BLE001 (any failure is reported: /health, on_failure)
            LOG.error("loading failed: %s", exc)
            self.load_error = exc
            if self._sampler is not None:
                self._sampler.stop()
            if sensor is not None:
                sensor.close()
            self.sensor = self.energy = self._sampler = None
            if engine is not None:
                engine.close(drain=False)
            with self._lock:
                self.phase = "failed" if self.phase == "loading" else self.phase
            if self.on_failure is not None:
                self.on_failure(exc)
            return
        with self._lock:
            self.engine = engine
            ready = self.phase == "loading"
            if ready:
                self.phase = "ready"
        if not ready:  # the server began to stop while loading
            self.shutdown()
        elif self.on_ready is not None:
            self.on_ready(self)

    # -- what routes see --------------------------------------------------------------------------
    def ready_engine(self) -> Engine:
        """The engine, or a 503 :class:`APIError` saying why there is none to use now."""
        retry = {"Retry-After": str(self.settings.retry_after_s)}
        phase, engine = self.phase, self.engine
        if phase == "ready" and engine is not None:
            return engine
        if phase == "loading":
            raise APIError(
                503,
                "the model is still loading; retry in a moment",
                code="model_loading",
                headers=retry,
            )
        if phase == "failed":
            raise APIError(
                503, f"the model failed to load: {self.load_error}", code="model_load_failed"
            )
        raise APIError(
            503,
            "the server is shutting down and admits no new requests; "
            "retry later or on another server",
            code="draining",
            headers=retry,
        )

    def health(self) -> tuple[int, dict[str, Any]]:
        """``GET /health``: 200 when ready, else 503; a JSON body either way.

        A ready server whose engine thread died answers 503 ``failed`` too, so that a liveness
        probe restarts it.
        """
        engine = self.engine
        broken = engine.failed if self.phase == "ready" and engine is not None else None
        phase = "failed" if broken is not None else self.phase
        body: dict[str, Any] = {
            "status": "ok" if phase == "ready" else phase,
            "model": self.settings.model_name,
        }
        if phase == "ready" and engine is not None:
            body.update(
                slots=engine.slots,
                running=engine.running,
                waiting=engine.waiting,
                max_context=engine.max_context,
                batched=engine.batched,
                power_sensor=self.sensor.describe() if self.sensor else None,
            )
        if phase == "failed":
            body["error"] = (
                f"the engine stopped: {broken}" if broken is not None else str(self.load_error)
            )
        return (200 if phase == "ready" else 503), body

    # -- stopping ---------------------------------------------------------------------------------
    def drain(self, timeout_s: float) -> None:
        """Stop admitting (503), let requests finish (cancelled after ``timeout_s``), and wait
        for their responses to be written. Blocking: call it off the event loop."""
        with self._lock:
            if self.phase in ("loading", "ready"):
                self.phase = "draining"
            engine = self.engine
        deadline = time.monotonic() + timeout_s
        if engine is not None:
            LOG.info(
                "draining: %d running, %d waiting (at most %.0f s)",
                engine.running,
                engine.waiting,
                timeout_s,
            )
            engine.close(drain=True, timeout=timeout_s)
        while self.in_flight > 0 and time.monotonic() < deadline + 5.0:
            time.sleep(0.02)

    def cancel_all(self) -> None:
        """Cancel every unfinished engine request (a second signal: stop now)."""
        for request in list(self.requests):
            request.cancel()

    def shutdown(self) -> None:
        """Close the engine (draining it first, bounded by the drain timeout) and the sensor."""
        with self._lock:
            if self.phase not in ("failed",):
                self.phase = "stopped"
            engine = self.engine
        if engine is not None:
            engine.close(drain=True, timeout=self.settings.drain_timeout_s)
        if self._sampler is not None:
            self._sampler.stop()
            self._sampler = None
        if self.sensor is not None:
            self.sensor.close()
