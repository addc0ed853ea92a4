"""The quantize stage of an export: a :class:`QuantConfig` applied to the float graph and model."""

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
from edge_sdk.exporters.quantize.awq import awq_scale
from edge_sdk.exporters.quantize.calibration import input_moments
from edge_sdk.exporters.quantize.config import QuantConfig
from edge_sdk.exporters.quantize.gptq import gptq_model
from edge_sdk.exporters.quantize.int4 import quantize_int4
from edge_sdk.exporters.quantize.int8 import CLIP_RATIOS, quantize_int8
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
    if method == "fp32":
        graph = onnx.load(str(float_path))
        share_tied_head(graph)
        return Quantized(graph, {"weights": "float32"})
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
    if method == "int8":
        return _int8(model, float_path, quant, calib_ids, window, calibration)
    if method == "w8a8":
        return _w8a8(model, float_path, quant, calib_ids, window, calibration)
    return _int4(model, float_path, quant, calib_ids, window, calibration, progress)


def _smoothed(
    model: LiteForCausalLM, float_path: Path, quant: QuantConfig, calib_ids: list[int], window: int
) -> tuple[LiteForCausalLM, Path]:
    """The SmoothQuant-migrated model and its float graph (the same function), when asked for."""
    if quant.smoothquant_alpha is None:
        return model, float_path
    model = smooth(model, calib_ids, window, quant.smoothquant_alpha)
    return model, export_onnx(model, float_path.parent / "smoothed.onnx")


def _int8(
    model: LiteForCausalLM,
    float_path: Path,
    quant: QuantConfig,
    calib_ids: list[int],
    window: int,
    calibration: dict[str, Any],
) -> Quantized:
    model, float_path = _smoothed(model, float_path, quant, calib_ids, window)
    graph = onnx.load(str(float_path))
    share_tied_head(graph)
    block = int(quant.group_size or 0)
    graph, report = quantize_int8(
        graph,
        input_moments(model, calib_ids, window),
        embedding=bool(quant.quantize_embedding),
        block_size=block,
    )
    session = dict(INT8_SESSION_CONFIG)
    if block:  # per-channel tensors (the LM head) get the same blocks, activations too
        session["session.qdq_matmulnbits_block_size"] = str(block)
    return Quantized(graph, _int8_details(report, calibration, quant), session)


def _int4(
    model: LiteForCausalLM,
    float_path: Path,
    quant: QuantConfig,
    calib_ids: list[int],
    window: int,
    calibration: dict[str, Any],
    progress: Progress,
) -> Quantized:
    group = quant.group_size
    if group is None:  # QuantConfig gives every int4 method one
        raise ConfigError(f"{quant.label}: int4 needs a group size")
    exponents: dict[str, float] = {}
    if quant.act_scale:
        model, exponents = awq_scale(model, calib_ids, window, group, progress)
        float_path = export_onnx(model, float_path.parent / "scaled.onnx")
    solved = None
    if quant.method == "gptq":
        solved = gptq_model(
            model,
            calib_ids,
            window,
            group,
            quant.gptq_damp,
            quant.gptq_act_order,
            head=bool(quant.quantize_embedding) and quant.lm_head_bits == 4,
            progress=progress,
        )
    graph = onnx.load(str(float_path))
    share_tied_head(graph)
    graph, report = quantize_int4(
        graph,
        group,
        solved,
        embedding=bool(quant.quantize_embedding),
        head_bits=int(quant.lm_head_bits or 8),
    )
    details: dict[str, Any] = {
        "weights": "int4",
        "activations": "float32",
        "scheme": "weight-only blocked QDQ (DequantizeLinear(axis=0, block_size) -> MatMul), opset "
        "21",
        "symmetric": True,
        "zero_point": 0,
        "levels": "-8..7",
        "granularity": f"block-wise: one scale per {quant.group_size} inputs (reduction dimension) "
        "per output "
        "channel; a last block shorter when the group size does not divide K",
        "algorithm": ("GPTQ" if quant.method == "gptq" else "round to nearest")
        + (" after AWQ-style activation-aware scaling" if quant.act_scale else ""),
        "embedding": (
            (
                "int8 per-row table; the LM head int8 per output channel (a tied head reads "
                "the int8 table)"
                if quant.lm_head_bits == 8
                else "int8 per-row table; the LM head int4 block-wise (a tied head as its own "
                "[E, V] copy)"
            )
            if quant.quantize_embedding
            else "float32 table and LM head"
        ),
        "quantized_matmuls": report.matmuls,
        "gptq_matmuls": report.solved,
        "int4_weight_bytes": report.int4_bytes,
        "int8_weight_bytes": report.int8_bytes,
        "scale_bytes": report.scale_bytes,
        "float_bytes_left": report.float_bytes_left,
        "onnxruntime": "fused at load into MatMulNBits (4-bit) on the CPU EP, accuracy_level 4",
        "tensorrt": "standard blocked DequantizeLinear (INT4 weight-only, opset 21)",
    }
    if quant.act_scale:
        details["act_scale"] = {
            "folded_into": "RMSNorm weights (q/k/v, gate/up), v_proj rows (o_proj), "
            "up_proj rows (down_proj); the graph has no extra op",
            "exponents": exponents,
        }
    if quant.needs_calibration:
        details["calibration"] = calibration
    return Quantized(graph, details, dict(INT8_SESSION_CONFIG))


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
    details = _int8_details(report, calibration, quant)
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


def _int8_details(report: Any, calibration: dict[str, Any], quant: QuantConfig) -> dict[str, Any]:
    block = quant.group_size if quant.method == "int8" else 0
    return {
        "weights": "int8",
        "activations": "float32",
        "scheme": "weight-only QDQ (DequantizeLinear -> MatMul)"
        + (", blocked (opset 21): the CPU form" if block else ": TensorRT's int8 weight form"),
        "symmetric": True,
        "zero_point": 0,
        "granularity": (
            f"block-wise: one scale per {block} inputs (axis 0, block_size {block}) of each "
            "output channel; the LM head per output channel"
            if block
            else "per-channel (axis 1: output channels of each [in, out] MatMul weight)"
        ),
        "smoothquant_alpha": quant.smoothquant_alpha,
        "onnxruntime": "fused at load into MatMulNBits (8-bit), accuracy level 4: int8 compute, "
        f"activations quantized per {block or 128} inputs at run time",
        "embedding": (
            "int8 per-row (Gather of int8 rows, times the row's scale); a tied LM head "
            "reuses the table through Transpose -> DequantizeLinear(axis 1)"
        )
        if quant.quantize_embedding
        else "float32 table and LM head",
        "clipping": f"per {'block' if block else 'channel'}, activation-weighted least squares "
        f"over ratios {list(CLIP_RATIOS)}",
        "quantized_matmuls": report.matmuls,
        "quantized_embeddings": report.embeddings,
        "calibrated_matmuls": report.calibrated,
        "calibration": calibration,
        "int8_weight_bytes": report.int8_bytes,
        "float_bytes_left": report.float_bytes_left,
    }
