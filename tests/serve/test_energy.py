"""Energy per request: step energy shared by tokens, idle energy charged to nobody."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from edge_sdk.power import open_sensor
from edge_sdk.power.sensors import PowerReading
from edge_sdk.serve.energy import EnergyAccountant
from tests.serve.served import MODEL, running_server


@dataclass(frozen=True)
class Step:
    start: float
    end: float
    tokens: dict[int, int] = field(default_factory=dict)


def _accountant(points: list[tuple[float, float]]) -> EnergyAccountant:
    acc = EnergyAccountant("test")
    acc._offset = 0.0  # steps and readings on one clock in this test
    for t, watts in points:
        acc.add_reading(PowerReading(t, watts, "test"))
    return acc


def test_a_step_is_shared_by_tokens_and_idle_time_is_not_charged() -> None:
    acc = _accountant([(0.0, 10.0), (1.0, 10.0), (2.0, 30.0), (3.0, 30.0)])
    acc.on_step(Step(0.0, 0.5, {1: 30}))  # prefill of request 1 alone: 5 J
    acc.on_step(Step(1.0, 2.0, {1: 1, 2: 3}))  # 10 -> 30 W linearly: 20 J, 1:3
    # 0.5 .. 1.0 s: no step, idle
    assert acc.take(1, 10) == pytest.approx(5.0 + 5.0)
    assert acc.take(2, 3) == pytest.approx(15.0)
    assert acc.take(3) == 0.0  # never ran
    assert acc.request_joules == pytest.approx(25.0)
    assert acc.board_joules == pytest.approx(10 + 20 + 30)
    usage = acc.usage(10.0, 20)
    assert usage == {"joules": 10.0, "tokens_per_joule": 2.0, "sensor": "test"}


def test_a_step_after_the_latest_reading_holds_it() -> None:
    acc = _accountant([(0.0, 4.0), (1.0, 8.0)])
    acc.on_step(Step(1.5, 2.0, {7: 1}))  # not settled until a reading or the request's end
    assert acc.request_joules == 0.0
    assert acc.take(7, 1) == pytest.approx(8.0 * 0.5)


def test_usage_carries_energy_from_the_replayed_sensor(
    demo_bundle_int8: Path, tmp_path: Path
) -> None:
    trace = tmp_path / "power.csv"
    trace.write_text("t,total_w\n0,5.0\n0.5,5.0\n1.0,5.0\n")  # 5 W, looped
    with running_server(
        demo_bundle_int8, open_power=lambda: open_sensor(f"replay:{trace}")
    ) as served:
        client = served.client()

        def ask(prompt: str) -> object:
            return client.completions.create(
                model=MODEL,
                prompt=prompt,
                max_tokens=20,
                temperature=0,
                extra_body={"ignore_eos": True},
            )

        with ThreadPoolExecutor(3) as pool:
            replies = list(pool.map(ask, ["Once upon a time", "The dog", "Mia said"]))
        stream = client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Hi"}],
            max_tokens=5,
            stream=True,
            stream_options={"include_usage": True},
        )
        last = list(stream)[-1]
        metrics = served.metrics_text()
    energies = [r.usage.model_extra["energy"] for r in replies]  # type: ignore[attr-defined]
    for energy in energies:
        assert energy["sensor"] == "replay"
        assert energy["joules"] > 0
        assert energy["tokens_per_joule"] == pytest.approx(20 / energy["joules"])
    assert last.usage is not None and last.usage.model_extra["energy"]["joules"] > 0
    # every step's energy (5 W x its duration) is charged, all of it, to the requests in it
    all_steps = sum(5.0 * (s.end - s.start) for s in served.steps)
    charged = sum(e["joules"] for e in energies) + last.usage.model_extra["energy"]["joules"]
    assert charged == pytest.approx(all_steps, rel=1e-6)
    assert "edge_serve_request_energy_joules_total" in metrics
    assert "edge_serve_tokens_per_joule" in metrics
