"""Efficiency figures on synthetic runs with known answers; JSONL, summary files, plot."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import pytest

from edge_sdk.errors import PowerError
from edge_sdk.power import EfficiencyLog, PowerReading, ReplaySensor


def _synthetic(log: EfficiencyLog) -> None:
    """Prefill 0.4 s at 12 W; decode 200 tokens at 50 tok/s at 7 W (analytic answer known)."""
    for i in range(4401):
        t = 100.0 + i * 0.001
        log.add_sample(PowerReading(t, 12.0 if t < 100.4 else 7.0, "VDD_IN"))
    log.start(100.0, prompt_tokens=32)
    log.tokens([100.4 + k * 0.02 for k in range(201)])  # first token ends prefill
    log.stop(104.4)


def test_known_answer_within_one_percent(tmp_path: Path) -> None:
    log = EfficiencyLog(tmp_path / "run.jsonl")
    _synthetic(log)
    s = log.summary()
    decode = next(p for p in s.phases if p.name == "decode")
    prefill = next(p for p in s.phases if p.name == "prefill")
    assert decode.tokens == 200 and decode.tokens_per_s == pytest.approx(50.0, rel=1e-9)
    assert decode.avg_w == pytest.approx(7.0, rel=0.01)
    assert decode.energy_j == pytest.approx(28.0, rel=0.01)
    assert decode.tokens_per_joule == pytest.approx(50.0 / 7.0, rel=0.01)  # tok/s per W
    assert decode.mj_per_token == pytest.approx(140.0, rel=0.01)
    assert prefill.energy_j == pytest.approx(4.8, rel=0.01) and prefill.peak_w == 12.0
    assert (prefill.tokens, prefill.token_kind) == (32, "prompt")  # the prompt, not token 1
    assert prefill.tokens_per_s == pytest.approx(32 / 0.4, rel=1e-9)
    assert prefill.mj_per_token == pytest.approx(4800.0 / 32, rel=0.01)
    assert decode.token_kind == "generated" and s.run.token_kind == "generated"
    assert s.run.tokens == 201 and s.run.energy_j == pytest.approx(4.8 + 28.0, rel=0.01)
    assert s.run.tokens_per_joule == pytest.approx(201 / 32.8, rel=0.01)
    assert s.info["prompt_tokens"] == 32


def test_jsonl_is_flushed_per_line_and_summaries_written(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    log = EfficiencyLog(path)
    log.start(0.0)
    log.add_sample(PowerReading(0.0, 5.0, "x"))
    log.token(0.1, text="Hi", token_id=7)
    lines = [json.loads(x) for x in path.read_text().splitlines()]  # before close
    assert [x["type"] for x in lines] == ["start", "sample", "token"]
    assert lines[2]["token_id"] == 7
    log.close()
    log = EfficiencyLog(tmp_path / "b.jsonl")
    _synthetic(log)
    log.write_summary(tmp_path / "s.json", tmp_path / "s.csv", info={"mode": "15W"})
    data = json.loads((tmp_path / "s.json").read_text())
    assert data["mode"] == "15W" and set(data["phases"]) == {"prefill", "decode"}
    assert data["phases"]["decode"]["tokens_per_s_per_w"] == pytest.approx(50 / 7, rel=0.01)
    assert data["summary_version"] == 2 and data["phases"]["prefill"]["tokens"] == 32
    rows = list(csv.DictReader((tmp_path / "s.csv").open()))
    assert [r["name"] for r in rows] == ["run", "prefill", "decode"]
    assert [r["token_kind"] for r in rows] == ["generated", "prompt", "generated"]
    log.close()
    # the JSONL log replays as a power trace
    assert ReplaySensor.from_file(tmp_path / "b.jsonl").points[-1][1] == 7.0


def test_without_power_tokens_per_second_still_work() -> None:
    log = EfficiencyLog()
    log.start(0.0)
    log.tokens([0.5, 1.0, 1.5])
    log.stop(1.5)
    s = log.summary()
    assert s.run.tokens_per_s == pytest.approx(2.0)
    assert s.run.energy_j is None and s.run.tokens_per_joule is None
    prefill = next(p for p in s.phases if p.name == "prefill")  # prompt size not given
    assert prefill.tokens is None and prefill.tokens_per_s is None
    assert prefill.duration_s == pytest.approx(0.5)
    with pytest.raises(PowerError, match="nothing to summarise"):
        EfficiencyLog().summary()


def test_memory_stays_bounded_and_energy_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    import edge_sdk.power.efficiency as efficiency

    monkeypatch.setattr(efficiency, "_MAX_POINTS", 1000)
    log = EfficiencyLog()
    for i in range(5001):
        log.add_sample(PowerReading(i * 0.01, 4.0 if (i // 50) % 2 else 8.0, "x"))
    times, _, _ = log.timeline()
    assert len(times) <= 1000
    exact = log.energy_between(0.0, 50.0)
    assert exact == pytest.approx(300.0, rel=0.01)
    log.start(0.0)
    log.stop(50.0)
    assert log.summary().run.peak_w == 8.0


@pytest.mark.skipif(
    importlib.util.find_spec("matplotlib") is None,
    reason="needs matplotlib (pip install 'edge-sdk-orin[plot]')",
)
def test_plot_is_a_png(tmp_path: Path) -> None:
    from edge_sdk.power import plot_efficiency

    log = EfficiencyLog()
    _synthetic(log)
    out = plot_efficiency(log, tmp_path / "p.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
