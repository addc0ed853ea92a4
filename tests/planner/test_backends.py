"""Bytes a decode step reads on each backend (issue 23 item 5), counted by hand on a small
config: hidden 64, 4 heads of 16 (2 KV heads), MLP 128, 2 layers, vocabulary 256, tied.

Per layer the MatMuls are q 64x64, k 64x32, v 64x32, o 64x64, gate 64x128, up 64x128 and
down 128x64: 36864 weights, 512 output channels; 2 RMSNorms of 64. The KV cache holds
2 x 2 heads x 16 = 64 values per layer and position.
"""

from __future__ import annotations

import pytest

from edge_sdk.config import ModelConfig
from edge_sdk.errors import ConfigError
from edge_sdk.planner.backends import BACKENDS, backend_layout, decode_step_bytes

WEIGHTS = 36864  # per layer
CHANNELS = 512  # output channels per layer


@pytest.fixture
def config() -> ModelConfig:
    return ModelConfig(
        vocab_size=256,
        hidden_size=64,
        num_layers=2,
        num_heads=4,
        num_kv_heads=2,
        intermediate_size=128,
        tie_word_embeddings=True,
        max_position_embeddings=64,
    )


def test_int8_on_each_backend(config: ModelConfig) -> None:
    # blocks of 64: every MatMul has 1 block per channel except down (K 128: 2) -> 576 scales
    cpu = decode_step_bytes(config, "cpu-fused", "int8", context=10)
    assert cpu.matmuls == 2 * (WEIGHTS + 576 * 4)  # fp32 scales
    assert cpu.floats == (2 * 128 + 64) * 4  # norms and the final norm, fp32
    assert cpu.head == 256 * 64 + 256 * 4  # the tied table in blocks of 64 (one per row)
    assert cpu.embedding_rows == 64 + 4
    assert cpu.cache == 2 * 10 * 64 * 4  # fp32 K/V
    assert cpu.total == 78336 + 1280 + 17408 + 68 + 5120

    cuda = decode_step_bytes(config, "cuda-fused", "int8", context=10)
    assert cuda.matmuls == 2 * (WEIGHTS + 576 * 2)  # fp16 scales, no zero points
    assert (cuda.floats, cuda.head, cuda.embedding_rows) == (320 * 2, 256 * 64 + 256 * 2, 66)
    assert cuda.cache == 2 * 10 * 64 * 2  # fp16 K/V

    trt = decode_step_bytes(config, "tensorrt", "int8", context=10)
    assert trt.matmuls == 2 * (WEIGHTS + CHANNELS * 4)  # per output channel, fp32 scales
    assert (trt.head, trt.embedding_rows, trt.cache) == (256 * 64 + 256 * 4, 68, 2560)


def test_int4_on_each_backend(config: ModelConfig) -> None:
    # the --int4 default: layer 0 int8 (blocks of 64: 576 scales; TensorRT per channel), layer 1
    # int4 in blocks of 64: 1 per output channel (K 64), 2 for down (K 128) -> 576 scales
    int4_layer = WEIGHTS // 2 + 576 * 4
    cpu = decode_step_bytes(config, "cpu-fused", "int4", context=10, batch=3)
    assert cpu.matmuls == (WEIGHTS + 576 * 4) + int4_layer
    assert cpu.head == 256 * 64 + 256 * 4  # the int8 table, one scale per row
    assert cpu.embedding_rows == 3 * 68  # one row per sequence
    assert cpu.cache == 3 * 2 * 10 * 64 * 4
    cuda = decode_step_bytes(config, "cuda-fused", "int4", context=10)
    cuda_layers = (WEIGHTS + 576 * 2) + WEIGHTS // 2 + 576 * 2
    assert cuda.matmuls == cuda_layers
    assert cuda.weights == cuda_layers + 320 * 2 + (16384 + 512) + 66
    trt = decode_step_bytes(config, "tensorrt", "int4", context=10)
    assert trt.matmuls == (WEIGHTS + CHANNELS * 4) + int4_layer and trt.cache == 2560


def test_untied_head_follows_the_backend(config: ModelConfig) -> None:
    untied = ModelConfig(**{**config.to_dict(), "tie_word_embeddings": False})
    assert decode_step_bytes(untied, "cpu-fused", "int8", 1).head == 64 * 256 + 256 * 4
    assert decode_step_bytes(untied, "cuda-fused", "int8", 1).head == 64 * 256 + 256 * 2
    assert decode_step_bytes(untied, "tensorrt", "int4", 1).head == 64 * 256 + 256 * 4


def test_cuda_reads_fewer_bytes_than_cpu_and_layouts_are_named() -> None:
    assert BACKENDS == ("cpu-fused", "cuda-fused", "tensorrt")
    assert backend_layout("cuda-fused", "int4").activation_dtype == "fp16"
    assert backend_layout("tensorrt", "int8").matmul.group_size is None
    with pytest.raises(ConfigError, match="valid backends"):
        backend_layout("rocm", "int8")
    with pytest.raises(ConfigError, match="int8 and int4"):
        backend_layout("tensorrt", "fp16")


def test_plan_reports_each_backend_for_int8_and_int4(config: ModelConfig) -> None:
    from edge_sdk.planner import plan
    from edge_sdk.planner.report import format_plan

    p = plan(config, "orin-nano-8gb", precision="int8", context=10)
    bandwidth = p.speed.bandwidth_bytes_s
    by_name = {d.backend: d for d in p.backends}
    assert list(by_name) == list(BACKENDS)
    assert by_name["cpu-fused"].bytes_per_step == 102212  # test_int8_on_each_backend
    assert by_name["cpu-fused"].decode_tps == pytest.approx(bandwidth / 102212)
    assert "on cuda-fused" in format_plan(p) and p.to_dict()["backends"][1]["backend"]
    assert plan(config, "orin-nano-8gb", precision="fp16", context=10).backends == ()
