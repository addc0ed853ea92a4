"""Prometheus metrics of one server (its own registry), served as text at ``GET /metrics``.

The list, with their meaning, is in ``serve/README.md``. Gauges of the engine (running,
waiting, KV cache) and of energy are read at scrape time; the energy metrics exist only while a
power sensor is in use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from edge_sdk.serve.energy import EnergyAccountant

__all__ = ["ServerMetrics", "endpoint_label"]

_ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/models", "/health", "/metrics")
_TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_TPOT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_E2E_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


def endpoint_label(path: str) -> str:
    """A bounded label for a request path (unknown paths are ``"other"``)."""
    if path.startswith("/v1/models/"):
        return "/v1/models"
    return path if path in _ENDPOINTS else "other"


class _EnergyCollector:
    """The energy metrics, present only while ``energy()`` returns an accountant."""

    def __init__(self, energy: Callable[[], EnergyAccountant | None]) -> None:
        self._energy = energy

    def collect(self) -> Iterator[Metric]:
        acc = self._energy()
        if acc is None:
            return
        yield CounterMetricFamily(
            "edge_serve_board_energy_joules",
            "Energy the power sensor measured while serving, idle included",
            value=acc.board_joules,
        )
        yield CounterMetricFamily(
            "edge_serve_request_energy_joules",
            "Energy of engine steps, charged to the requests in them",
            value=acc.request_joules,
        )
        per_joule = acc.request_tokens / acc.request_joules if acc.request_joules > 0 else 0.0
        yield GaugeMetricFamily(
            "edge_serve_tokens_per_joule",
            "Generated tokens per joule charged to finished requests",
            value=per_joule,
        )
        watts = acc.latest_watts
        if watts is not None:
            yield GaugeMetricFamily(
                "edge_serve_power_watts", "Latest total power reading", value=watts
            )


class ServerMetrics:
    """Counters, histograms and gauges of one server; ``engine()`` and ``energy()`` give the
    current engine and accountant (None while loading / without a sensor)."""

    def __init__(
        self, engine: Callable[[], Any], energy: Callable[[], EnergyAccountant | None]
    ) -> None:
        self.registry = reg = CollectorRegistry()
        self.http_requests = Counter(
            "edge_serve_http_requests",
            "HTTP requests answered",
            ["endpoint", "status"],
            registry=reg,
        )
        self.finished = Counter(
            "edge_serve_requests_finished",
            "Generation requests finished, by finish reason (stop, length, cancelled)",
            ["endpoint", "finish_reason"],
            registry=reg,
        )
        self.prompt_tokens = Counter(
            "edge_serve_prompt_tokens",
            "Prompt tokens of requests that started generating (cached ones included)",
            registry=reg,
        )
        self.prompt_tokens_cached = Counter(
            "edge_serve_prompt_tokens_cached",
            "Prompt tokens reused from the prefix cache, not prefilled (hit rate: "
            "this / edge_serve_prompt_tokens_total)",
            registry=reg,
        )
        self.generation_tokens = Counter(
            "edge_serve_generation_tokens", "Tokens generated", registry=reg
        )
        self.drafted_tokens = Counter(
            "edge_serve_speculative_drafted_tokens",
            "Tokens drafted by speculative decoding and checked by the model",
            registry=reg,
        )
        self.accepted_tokens = Counter(
            "edge_serve_speculative_accepted_tokens",
            "Drafted tokens the model accepted (acceptance rate: this / "
            "edge_serve_speculative_drafted_tokens_total)",
            registry=reg,
        )
        self.ttft = Histogram(
            "edge_serve_time_to_first_token_seconds",
            "Time from submission (queueing included) to the first token",
            buckets=_TTFT_BUCKETS,
            registry=reg,
        )
        self.tpot = Histogram(
            "edge_serve_time_per_output_token_seconds",
            "Time between consecutive tokens of a request",
            buckets=_TPOT_BUCKETS,
            registry=reg,
        )
        self.e2e = Histogram(
            "edge_serve_request_duration_seconds",
            "Time from submission to the last token",
            buckets=_E2E_BUCKETS,
            registry=reg,
        )

        def engine_value(read: Callable[[Any], float]) -> Callable[[], float]:
            return lambda: float(read(engine())) if engine() is not None else 0.0

        for name, doc, read in (
            ("edge_serve_requests_running", "Requests in engine slots now", lambda e: e.running),
            ("edge_serve_requests_waiting", "Requests queued for a slot", lambda e: e.waiting),
            ("edge_serve_slots", "Engine slots (requests decoded together)", lambda e: e.slots),
            (
                "edge_serve_kv_cache_usage_ratio",
                "KV cache positions in use / (slots x max context)",
                lambda e: e.kv_cache_used,
            ),
            (
                "edge_serve_kv_cache_bytes",
                "Bytes allocated for the KV cache of all slots",
                lambda e: e.kv_cache_bytes,
            ),
        ):
            Gauge(name, doc, registry=reg).set_function(engine_value(read))
        reg.register(_EnergyCollector(energy))

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)
