"""The cache, weights and compute per layer type (full, sliding-window, linear attention), each
checked against a hand computation."""

from __future__ import annotations

import json

import pytest

from edge_sdk.planner import (
    decode_flops,
    estimate_cache,
    get_device,
    get_preset,
    max_context,
    plan,
    prefill_flops,
    weight_bytes,
    weight_format,
)
from edge_sdk.planner.cli import main
from edge_sdk.planner.layers import layer_matmuls
from edge_sdk.planner.report import format_plan

# Gemma 3 1B: 26 layers, global at 5, 11, 17, 23 (4), the 22 others sliding over 512 positions;
# 1 KV head of 256. K and V of one layer and position in fp32: 2 x 1 x 256 x 4 = 2048 bytes.
GEMMA_KV = 2 * 1 * 256 * 4
# Qwen3.5 0.8B: 24 layers, full attention at 3, 7, ..., 23 (6) with 2 KV heads of 256:
# 2 x 2 x 256 x 4 = 4096 bytes per layer and position in fp32; 18 Gated DeltaNet layers whose
# state per sequence is the conv window, (2 x 16 x 128 + 16 x 128) channels x (4 - 1) positions,
# plus 16 value heads' 128 x 128 matrices, in float32.
QWEN35_KV = 2 * 2 * 256 * 4
QWEN35_STATE = 18 * ((2 * 16 * 128 + 16 * 128) * 3 + 16 * 128 * 128) * 4  # 20.2 MB


@pytest.mark.parametrize("context", [4096, 32768])
def test_gemma_sliding_layers_need_their_window_and_get_every_position(context: int) -> None:
    cache = estimate_cache(get_preset("gemma-3-1b"), context, 1, "fp32")
    assert (cache.full_layers, cache.sliding_layers, cache.linear_layers) == (4, 22, 0)
    assert cache.full == 4 * GEMMA_KV * context
    assert cache.sliding == 22 * GEMMA_KV * 512  # 23.1 MB whatever the context
    assert cache.needed == 4 * GEMMA_KV * context + 22 * GEMMA_KV * 512
    # this runtime keeps every position of every attention layer, past and present buffers
    assert cache.allocated == 2 * 26 * GEMMA_KV * context
    assert cache.state == 0


def test_gemma_1b_cache_numbers() -> None:
    short, long = (estimate_cache(get_preset("gemma-3-1b"), n, 1, "fp32") for n in (4096, 32768))
    assert (short.needed, short.allocated) == (56_623_104, 436_207_616)
    assert (long.needed, long.allocated) == (291_504_128, 3_489_660_928)
    assert estimate_cache(get_preset("gemma-3-1b"), 300, 1, "fp32").sliding == 22 * GEMMA_KV * 300


@pytest.mark.parametrize("context", [4096, 32768])
def test_qwen35_hybrid_cache_is_six_kv_layers_and_a_fixed_state(context: int) -> None:
    cache = estimate_cache(get_preset("qwen3.5-0.8b"), context, 1, "fp32")
    assert (cache.full_layers, cache.sliding_layers, cache.linear_layers) == (6, 0, 18)
    assert cache.full == 6 * QWEN35_KV * context
    assert cache.state == QWEN35_STATE == 20_201_472
    assert cache.needed == 6 * QWEN35_KV * context + QWEN35_STATE
    assert cache.allocated == 2 * cache.needed
    assert estimate_cache(get_preset("qwen3.5-0.8b"), context, 3, "fp16").state == 3 * QWEN35_STATE


def test_hybrid_cache_at_32k_is_a_ninth_of_a_qwen3_of_its_size() -> None:
    hybrid = estimate_cache(get_preset("qwen3.5-0.8b"), 32768, 1, "fp32").needed
    dense = estimate_cache(get_preset("qwen3-0.6b"), 32768, 1, "fp32").needed
    assert hybrid == 825_507_840
    assert dense == 28 * 2 * 8 * 128 * 4 * 32768 == 7_516_192_768
    assert dense > 9 * hybrid


def test_max_context_grows_with_the_smaller_cache() -> None:
    device, fmt = get_device("orin-nano-8gb"), weight_format("int8")
    hybrid = max_context(get_preset("qwen3.5-0.8b"), device, fmt, prompt=512)
    dense = max_context(get_preset("qwen3-0.6b"), device, fmt, prompt=512)
    assert dense > 8000 and hybrid > 8 * dense  # weights are alike; the cache is not
    p = plan(get_preset("qwen3.5-0.8b"), device, precision="int8", context=16384, prompt=512)
    assert p.max_context == hybrid and p.max_batch == 3  # the prompt's logits limit it then
    assert plan(get_preset("qwen3-0.6b"), device, context=16384, prompt=512).max_batch == 0


def test_matrices_of_each_layer_type() -> None:
    q35 = get_preset("qwen3.5-0.8b")
    mlp = ((1024, 3584), (1024, 3584), (3584, 1024))
    # Gated DeltaNet: in_proj_qkv, in_proj_z, in_proj_b, in_proj_a, out_proj
    assert layer_matmuls(q35, 0) == (
        (1024, 6144),
        (1024, 2048),
        (1024, 16),
        (1024, 16),
        (2048, 1024),
        *mlp,
    )
    # gated attention: q_proj yields queries and the output gate (2 x 8 x 256), k, v, o
    assert layer_matmuls(q35, 3) == ((1024, 4096), (1024, 512), (1024, 512), (2048, 1024), *mlp)
    per_channel = weight_format("int8", group_size=0)  # int8 + one fp32 scale per output

    def int8(shapes: tuple[tuple[int, int], ...]) -> int:
        return sum(n_in * n_out + 4 * n_out for n_in, n_out in shapes)

    w = weight_bytes(q35, per_channel)
    assert w.layers == 18 * int8(layer_matmuls(q35, 0)) + 6 * int8(layer_matmuls(q35, 3))
    # fp32 float parts: per linear layer the conv (6144 x 4), A_log and dt_bias (16 each), the
    # gated norm (128); per attention layer q/k norms (2 x 256); 2 norms a layer; final norm
    floats = 18 * (6144 * 4 + 2 * 16 + 128) + 6 * 2 * 256 + 24 * 2 * 1024 + 1024
    assert w.norms_biases == 4 * floats


def test_gemma_and_qwen3_norms_are_counted() -> None:
    gemma = weight_bytes(get_preset("gemma-3-1b"), weight_format("int8"))
    assert gemma.norms_biases == 4 * (26 * (4 * 1152 + 2 * 256) + 1152)  # 4 norms + q/k norms
    qwen3 = weight_bytes(get_preset("qwen3-0.6b"), weight_format("int8"))
    assert qwen3.norms_biases == 4 * (28 * (2 * 1024 + 2 * 128) + 1024)


def test_attention_flops_grow_with_context_only_where_attention_does() -> None:
    q35 = get_preset("qwen3.5-0.8b")  # 6 attention layers of 8 x 256; linear ones fixed
    assert decode_flops(q35, 32768) - decode_flops(q35, 128) == 6 * 4 * 2048 * (32768 - 128)
    gemma = get_preset("gemma-3-1b")  # past 512 positions only the 4 global layers grow
    assert decode_flops(gemma, 8192) - decode_flops(gemma, 4096) == 4 * 4 * 1024 * 4096
    assert decode_flops(gemma, 512) - decode_flops(gemma, 256) == 26 * 4 * 1024 * 256
    recurrence = 2 * 6144 * 4 + 7 * 16 * 128 * 128  # conv + state decay, S.k, update, q.S
    matmuls = 18 * (1024 * (6144 + 2048 + 32) + 2048 * 1024) + 6 * (1024 * 5120 + 2048 * 1024)
    matmuls += 24 * 3 * 1024 * 3584 + 1024 * 248320  # MLPs and the LM head
    assert decode_flops(q35, 0) == 2 * matmuls + 18 * recurrence
    # prefill: the sliding layers attend to 1..512 then 512 positions for the rest
    sliding = 4 * 1024 * (512 * 513 / 2 + (2048 - 512) * 512)
    full = 4 * 1024 * 2048 * 2049 / 2
    no_attention = prefill_flops(gemma, 2048) - 22 * sliding - 4 * full
    assert no_attention == pytest.approx(2048 * (decode_flops(gemma, 0)), rel=1e-12)


def test_a_decode_step_reads_the_window_and_rewrites_the_state() -> None:
    p = plan(get_preset("qwen3.5-0.8b"), "orin-nano-8gb", precision="int8", context=32768)
    kv = 6 * QWEN35_KV * 32768
    assert p.speed.bytes_per_step == p.memory.weights.read_per_token + kv + 2 * QWEN35_STATE
    g = plan(get_preset("gemma-3-1b"), "orin-nano-8gb", precision="int8", context=32768)
    assert g.speed.bytes_per_step == g.memory.weights.read_per_token + 291_504_128


def test_report_and_json_show_the_split(capsys: pytest.CaptureFixture[str]) -> None:
    text = format_plan(plan(get_preset("qwen3.5-0.8b"), "orin-nano-8gb", context=32768))
    assert "full attention (6 layers)" in text and "linear-attention state (18 layers)" in text
    gemma = format_plan(plan(get_preset("gemma-3-1b"), "orin-nano-8gb", context=32768))
    assert "sliding window (22 layers)" in gemma and "the window needs 512: 23.1 MB" in gemma
    assert "the model needs 292 MB per copy" in gemma
    plain = format_plan(plan(get_preset("qwen2.5-1.5b"), "orin-nano-8gb"))
    assert "full attention (" not in plain and "the model needs" not in plain
    assert main(["qwen3.5-0.8b", "--device", "orin-nano-8gb", "--context", "32768", "--json"]) == 0
    memory = json.loads(capsys.readouterr().out)["memory"]
    cache = memory["cache"]
    assert (cache["full_layers"], cache["linear_layers"], cache["state_dtype"]) == (6, 18, "fp32")
    assert cache["state"] == QWEN35_STATE and cache["full"] == 6 * QWEN35_KV * 32768
    assert memory["kv_cache"] == cache["needed"] == 825_507_840
    assert memory["kv_allocated"] == cache["allocated"] == 2 * 825_507_840
