"""Speed (roofline) and energy/cost models, with hand-checked numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_sdk.errors import ConfigError
from edge_sdk.planner import (
    CostInputs,
    decode_flops,
    estimate_tco,
    get_preset,
    plan,
    prefill_flops,
    read_tokens_per_joule,
)


def test_1_5b_int8_decode_bound_is_68_gbs_over_weight_bytes() -> None:
    p = plan(get_preset("qwen2.5-1.5b"), "orin-nano-8gb", precision="int8", context=4096)
    w = p.memory.weights
    assert p.speed.bandwidth_bytes_s == 68e9
    assert p.speed.weights_only_tps == pytest.approx(68e9 / w.read_per_token)
    # a token reads every layer matrix and the LM head once: the stored weights and one row
    assert w.read_per_token == pytest.approx(w.stored, rel=0.001)
    assert 40 < p.speed.weights_only_tps < 48
    assert p.speed.decode_bound == "bandwidth"
    assert p.speed.decode_tps < p.speed.weights_only_tps  # the KV cache is read too


def test_bounds_sit_above_published_speeds() -> None:
    # MLC INT4 Llama 3.2 3B: 27.7 tok/s on Orin Nano 8GB (15W), 43.1 on Super (MAXN_SUPER)
    cfg = get_preset("llama-3.2-3b")
    nano = plan(cfg, "orin-nano-8gb", precision="int4", context=512)
    sup = plan(cfg, "orin-nano-super", mode="MAXN_SUPER", precision="int4", context=512)
    assert 27.7 < nano.speed.weights_only_tps < 27.7 / 0.6
    assert 43.1 < sup.speed.weights_only_tps < 43.1 / 0.6


def test_power_mode_derates_bandwidth_and_compute() -> None:
    cfg = get_preset("qwen2.5-0.5b")
    full = plan(cfg, "orin-nano-super", mode="25W", precision="int8", context=1024)
    low = plan(cfg, "orin-nano-super", mode="15W", precision="int8", context=1024)
    assert low.speed.bandwidth_bytes_s == pytest.approx(102e9 * 2133 / 3199)
    assert low.speed.peak_ops_s == pytest.approx(full.speed.peak_ops_s * 612 / 918)
    agx = plan(cfg, "agx-orin-32gb", mode="15W", precision="int8", context=1024)
    assert agx.mode == "MODE_15W"
    assert agx.speed.peak_ops_s == pytest.approx(14 * 4096 * 930e6 * (408 / 930) * (3 / 7))


def test_flops_formulas() -> None:
    cfg = get_preset("llama-2-7b")
    matmul = 32 * (4 * 4096 * 4096 + 3 * 4096 * 11008) + 4096 * 32000
    assert decode_flops(cfg, 0) == 2 * matmul
    assert decode_flops(cfg, 100) == 2 * matmul + 4 * 32 * 4096 * 100
    assert prefill_flops(cfg, 3) == 2 * matmul * 3 + 4 * 32 * 4096 * (1 + 2 + 3)


def test_efficiency_file_keys(tmp_path: Path) -> None:
    for content in (
        {"tokens_per_joule": 3.5},
        {"decode": {"tokens_per_joule": 3.5}},
        {"run": {"tokens_per_joule": 1.0}, "phases": {"decode": {"tokens_per_joule": 3.5}}},
        {"total": {"tokens_per_joule": 3.5}},
    ):
        path = tmp_path / "eff.json"
        path.write_text(json.dumps(content), encoding="utf-8")
        assert read_tokens_per_joule(path) == 3.5
    path.write_text('{"decode": {"tokens_per_joule": null}}', encoding="utf-8")
    with pytest.raises(ConfigError, match="tokens_per_joule"):
        read_tokens_per_joule(path)
    with pytest.raises(ConfigError, match="cannot read"):
        read_tokens_per_joule(tmp_path / "missing.json")


def test_measured_efficiency_sets_energy_per_token() -> None:
    costs = CostInputs(tokens_per_joule=4.0, efficiency_source="eff.json", electricity_price=0.30)
    p = plan(get_preset("qwen2.5-0.5b"), "orin-nano-8gb", costs=costs)
    assert p.energy.joules_per_token == 0.25
    assert p.energy.kwh_per_million_tokens == pytest.approx(1e6 / 4 / 3.6e6)
    assert p.energy.cost_per_million_tokens == pytest.approx(0.30 * 1e6 / 4 / 3.6e6)
    assert p.energy.source.startswith("measured")


def test_tco_arithmetic() -> None:
    t = estimate_tco(
        tokens_per_s=10,
        hardware_price=500,
        power_w=20,
        years=1,
        utilisation=0.5,
        electricity_price=0.2,
        idle_power_w=4,
    )
    hours = 365.25 * 24
    kwh = hours * (20 * 0.5 + 4 * 0.5) / 1000
    assert t.energy_kwh == pytest.approx(kwh)
    assert t.total_cost == pytest.approx(500 + 0.2 * kwh)
    assert t.cost_per_million_tokens == pytest.approx(
        t.total_cost / (10 * 0.5 * hours * 3600) * 1e6
    )
    with pytest.raises(ConfigError):
        estimate_tco(10, 500, 20, utilisation=0)
