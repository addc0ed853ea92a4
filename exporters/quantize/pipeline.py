"""The quantize stage of the traced export (fp16, W8A8): the float graph and model rewritten.

fp32, int8 and int4 are quantized layer by layer in the streamed flow
(:mod:`edge_sdk.exporters.stream.layer_quant`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx
import torch

from edge_sdk.cli_support import Progress
from edge_sdk.errors import ConfigError
from edge_sdk.exporters.model import LiteForCausalLM
from edge_sdk.exporters.onnx_export import export_onnx, share_tied_head
from edge_sdk.exporters.ort_check import INT8_SESSION_CONFIG
from edge_sdk.exporters.quantize.calibration import input_moments
from edge_sdk.exporters.quantize.config import QuantConfig
from edge_sdk.exporters.quantize.details import int8_details
from edge_sdk.exporters.quantize.int8 import quantize_int8
from edge_sdk.exporters.quantize.scaling import one_thread
from edge_sdk.exporters.quantize.w8a8 import (
    activation_ranges,
    add_activation_qdq,
    matmul_weight_keys,
    smooth,
)

__all__ = ["Quantized", "quantize_model"]


@dataclass
class Quantized:
    """The graph to write and what to record about it."""

    graph: onnx.ModelProto
    details: dict[str, Any]
    session_config: dict[str, str] = field(default_factory=dict)


def quantize_model(
    model: LiteForCausalLM,
    float_path: Path,
    quant: QuantConfig,
    calib_ids: list[int],
    window: int,
    calibration: dict[str, Any],
    progress: Progress,
) -> Quantized:
    """Apply ``quant``; ``float_path`` is the verified float32 graph of ``model``."""
    with one_thread():
        return _quantize(model, float_path, quant, calib_ids, window, calibration, progress)


def _quantize(
    model: LiteForCausalLM,
    float_path: Path,
    quant: QuantConfig,
    calib_ids: list[int],
    window: int,
    calibration: dict[str, Any],
    progress: Progress,
) -> Quantized:
    work = float_path.parent
    method = quant.method
    if method == "fp16":
        graph = onnx.load(str(export_onnx(model, work / "fp16.onnx", torch.float16)))
        share_tied_head(graph)
        return Quantized(
            graph,
            {
                "weights": "float16",
                "activations": "float16",
                "float32_islands": [
                    "RMSNorm (mean square and scaling)",
                    "softmax (scores + mask)",
                    "RoPE angles",
                ],
                "io": "float32 inputs/outputs and KV cache at the interface; casts inside the "
                "graph",
            },
        )
    if method == "w8a8":
        return _w8a8(model, float_path, quant, calib_ids, window, calibration)
    raise ConfigError(
        f"{quant.label} is exported by the streamed flow (edge_sdk.exporters.stream), not traced"
    )


def _smoothed(
    model: LiteForCausalLM, float_path: Path, quant: QuantConfig, calib_ids: list[int], window: int
) -> tuple[LiteForCausalLM, Path]:
    """The SmoothQuant-migrated model and its float graph (the same function), when asked for."""
    if quant.smoothquant_alpha is None:
        return model, float_path
    model = smooth(model, calib_ids, window, quant.smoothquant_alpha)
    return model, export_onnx(model, float_path.parent / "smoothed.onnx")


def _w8a8(
    model: LiteForCausalLM,
    float_path: Path,
    quant: QuantConfig,
    calib_ids: list[int],
    window: int,
    calibration: dict[str, Any],
) -> Quantized:
    model, float_path = _smoothed(model, float_path, quant, calib_ids, window)
    graph = onnx.load(str(float_path))
    names = matmul_weight_keys(graph)  # before the head is shared: its key is lm_head's weight
    ranges = activation_ranges(model, calib_ids, window, quant.calib_method, quant.percentile)
    thresholds = {name: ranges[key] for name, key in names.items() if key in ranges}
    share_tied_head(graph)
    graph, report = quantize_int8(
        graph, input_moments(model, calib_ids, window), embedding=bool(quant.quantize_embedding)
    )
    quantized = add_activation_qdq(graph, thresholds, quant.exclude)
    details = int8_details(report, calibration, quant)
    details.update(
        {
            "weights": "int8",
            "activations": "int8",
            "scheme": "static QDQ, TensorRT explicit quantization: QuantizeLinear -> "
            "DequantizeLinear on each "
            "weight MatMul's activation input (per tensor), DequantizeLinear on its int8 weight",
            "activation_granularity": "per tensor, symmetric, int8 zero point 0",
            "activation_calibration": quant.calib_method
            + (
                f" ({quant.percentile} percentile of |x|)"
                if quant.calib_method == "percentile"
                else ""
            ),
            "smoothquant_alpha": quant.smoothquant_alpha,
            "activation_quantized_matmuls": len(quantized),
            "excluded": [
                "attention score (Q K^T) and value (P V) products: never quantized",
                *[f"MatMuls whose name contains {p!r}" for p in quant.exclude],
            ],
            "onnxruntime": "runs on the CPU EP (Q/DQ pairs fused into MatMulIntegerToFloat) but "
            "slower than "
            "weight-only int8, the CPU form",
        }
    )
    return Quantized(graph, details, dict(INT8_SESSION_CONFIG))
