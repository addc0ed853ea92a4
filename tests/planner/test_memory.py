"""Memory model: weight layouts by precision, KV cache, fit, max context and batch."""

from __future__ import annotations

import pytest

from edge_sdk.config import ModelConfig
from edge_sdk.errors import ConfigError
from edge_sdk.planner import (
    estimate_memory,
    get_device,
    get_preset,
    kv_cache_bytes,
    max_batch,
    max_context,
    plan,
    weight_bytes,
    weight_format,
)


def test_fp32_counts_every_parameter_once_with_tied_embeddings(tiny_config: ModelConfig) -> None:
    w = weight_bytes(tiny_config, weight_format("fp32"))
    assert w.stored == 4 * tiny_config.parameter_count()
    assert w.lm_head == 0  # tied: the bundle stores one table
    assert w.total == w.stored + w.tied_copy == w.stored + 100 * 16 * 4  # ORT's folded Transpose


def test_int8_follows_the_exporter_layout(tiny_config: ModelConfig) -> None:
    # Per layer: q [16->16], k,v [16->8], o [16->16], gate/up [16->32], down [32->16];
    # int8 values + one fp32 scale per output channel.
    per_layer = (
        (16 * 16 + 16 * 4)
        + 2 * (16 * 8 + 8 * 4)
        + (16 * 16 + 16 * 4)
        + 2 * (16 * 32 + 32 * 4)
        + (32 * 16 + 16 * 4)
    )
    table = 100 * 16 + 100 * 4  # int8 per row + fp32 row scales
    norms = (2 * 2 + 1) * 16 * 4  # fp32
    w = weight_bytes(tiny_config, weight_format("int8", group_size=0))
    assert w.layers == 2 * per_layer
    assert w.embedding == table + 100 * 4  # + the tied head's own copy of the row scales
    assert w.lm_head == 0  # tied: stored once, the head is MatMul(x, Transpose(table))
    assert w.norms_biases == norms
    assert w.stored == 2 * per_layer + table + 100 * 4 + norms
    assert w.total == w.stored + table  # resident: the transposed copy onnxruntime folds at load


def test_int8_keep_embedding_stores_a_tied_table_once_in_fp32(tiny_config: ModelConfig) -> None:
    w = weight_bytes(tiny_config, weight_format("int8"), quantize_embedding=False)
    assert w.embedding == 100 * 16 * 4 and w.lm_head == 0 and w.tied_copy == w.embedding


def test_int4_group_scales_and_zero_points(tiny_config: ModelConfig) -> None:
    fmt = weight_format("int4", group_size=8)
    w = weight_bytes(tiny_config, fmt)
    # down [32 -> 16]: 512 values / 2 + (32 / 8 groups x 16 outputs) x (2 B scale + 0.5 B zero pt)
    down = 32 * 16 // 2 + 4 * 16 * 2.5
    assert w.layers > 2 * down
    assert weight_bytes(tiny_config, weight_format("int4", group_size=32)).total < w.total
    with pytest.raises(ConfigError):
        weight_format("int4", group_size=0)


def test_qkv_biases_are_float() -> None:
    cfg = get_preset("qwen2.5-0.5b")
    w = weight_bytes(cfg, weight_format("int8"))
    biases = cfg.num_layers * (cfg.q_size + 2 * cfg.kv_size)
    norms = (2 * cfg.num_layers + 1) * cfg.hidden_size
    assert w.norms_biases == 4 * (biases + norms)


def test_kv_cache_formula() -> None:
    cfg = get_preset("qwen2.5-1.5b")  # 28 layers, 2 KV heads, head_dim 128
    assert kv_cache_bytes(cfg, 4096, 1, "fp16") == 2 * 28 * 2 * 128 * 4096 * 2
    assert kv_cache_bytes(cfg, 1000, 3, "fp32") == 2 * 28 * 2 * 128 * 1000 * 3 * 4
    llama7 = get_preset("llama-2-7b")  # multi-head: 32 KV heads
    assert kv_cache_bytes(llama7, 4096, 1, "fp16") == 2 * 32 * 32 * 128 * 4096 * 2  # 2.1 GB


def test_one_and_a_half_b_int8_fits_on_orin_nano_8gb() -> None:
    p = plan(get_preset("qwen2.5-1.5b"), "orin-nano-8gb", precision="int8", context=4096)
    assert p.memory.fits
    # blocks of 64 (the table too): 4 bytes of scale per 64 weights
    assert 1.85e9 < p.memory.weights.total < 1.95e9
    per_channel = plan(
        get_preset("qwen2.5-1.5b"), "orin-nano-8gb", precision="int8", group_size=0, context=4096
    )
    assert 1.7e9 < per_channel.memory.weights.total < 1.85e9


def test_seven_b_fp16_does_not_fit_on_orin_nano_8gb() -> None:
    for name in ("llama-2-7b", "qwen2.5-7b"):
        p = plan(get_preset(name), "orin-nano-8gb", precision="fp16", context=2048)
        assert not p.memory.fits
        assert p.max_context == 0 and p.max_batch == 0


def test_seven_b_bf16_weights_are_about_14_gb_not_26_8() -> None:
    p = plan(get_preset("llama-2-7b"), "agx-orin-32gb", precision="bf16", context=4096)
    r = p.rule_of_thumb
    assert 13.3e9 < p.memory.weights.total < 14.0e9
    assert r.rule_memory_bytes == pytest.approx(2 * r.weights_bytes, rel=0.001)  # ~27 GB
    assert r.rule_memory_bytes / 1e9 == pytest.approx(26.95, abs=0.1)
    assert r.total_bytes < r.rule_memory_bytes
    assert any("doubles the weights" in reason for reason in r.reasons)
    assert any("hidden^2" in reason for reason in r.reasons)
    assert r.flops_ratio > 10  # 2 x seq x layers x hidden^2 misses ~12 h^2 per layer and more


def test_max_context_and_batch_are_the_largest_that_fit() -> None:
    cfg, device, fmt = (
        get_preset("llama-3.2-3b"),
        get_device("orin-nano-8gb"),
        weight_format("int8"),
    )
    longest = max_context(cfg, device, fmt, batch=1)
    assert 0 < longest < cfg.max_position_embeddings
    assert estimate_memory(cfg, device, fmt, longest).fits
    assert not estimate_memory(cfg, device, fmt, longest + 1).fits
    widest = max_batch(cfg, device, fmt, context=1024)
    assert widest >= 1
    assert estimate_memory(cfg, device, fmt, 1024, widest).fits
    assert not estimate_memory(cfg, device, fmt, 1024, widest + 1).fits


def test_max_context_is_capped_by_the_model() -> None:
    p = plan(get_preset("smollm2-135m"), "agx-orin-64gb", precision="fp16", context=1024)
    assert p.max_context == 8192 and p.max_context_limit == "model"


def test_bad_sizes_are_config_errors(tiny_config: ModelConfig) -> None:
    device, fmt = get_device("orin-nano-8gb"), weight_format("fp16")
    for kwargs in (
        {"context": -1},
        {"context": 0},
        {"context": 8, "batch": 0},
        {"context": 8, "prompt": 9},
    ):
        with pytest.raises(ConfigError):
            estimate_memory(tiny_config, device, fmt, **kwargs)
