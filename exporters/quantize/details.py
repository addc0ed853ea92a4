"""What the manifest records about an export's quantization, and the onnxruntime session
entries its graph was checked with."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto

from edge_sdk.exporters.fused_graph import ORT_GRAPH_FILE
from edge_sdk.exporters.ort_check import INT8_SESSION_CONFIG
from edge_sdk.exporters.quantize.config import INT8_GROUP_SIZE, QuantConfig
from edge_sdk.exporters.quantize.int4 import Int4Report
from edge_sdk.exporters.quantize.int8 import CLIP_RATIOS, Int8Report

__all__ = ["int8_details", "quant_details", "session_config_for", "weight_counts"]


def session_config_for(quant: QuantConfig) -> dict[str, str]:
    """Session entries for the bundle: onnxruntime's int8-compute kernels for integer weights
    (per-channel int8 tensors and activations in the int8 config's blocks)."""
    if quant.precision not in ("int8", "int4", "w8a8"):
        return {}
    session = dict(INT8_SESSION_CONFIG)
    if quant.method == "int8" and quant.group_size:
        session["session.qdq_matmulnbits_block_size"] = str(quant.group_size)
    return session


def weight_counts(graph: onnx.ModelProto) -> dict[str, int]:
    """Bytes by kind of a graph's initializers (read from the dims: no weights loaded)."""
    counts = {"int8": 0, "int4": 0, "scale": 0, "float": 0, "dequantized": 0}
    stored: set[tuple[str, ...]] = set()
    for init in graph.graph.initializer:
        place = tuple(entry.value for entry in init.external_data)
        if place and place in stored:  # an alias over bytes already counted (a 4-bit table)
            continue
        stored.add(place)
        size = int(np.prod(init.dims)) if init.dims else 1
        if init.data_type == TensorProto.INT8:
            counts["int8"] += size
        elif init.data_type == TensorProto.INT4:
            counts["int4"] += (size + 1) // 2
        elif init.data_type == TensorProto.FLOAT and init.name.endswith(".scale"):
            counts["scale"] += 4 * size
        elif init.data_type == TensorProto.FLOAT:
            counts["float"] += 4 * size
    counts["dequantized"] = sum(
        1
        for node in graph.graph.node
        if node.op_type == "DequantizeLinear" and not node.output[0].startswith("lm_head.tied")
    )
    return counts


def quant_details(
    quant: QuantConfig,
    graph: onnx.ModelProto,
    calibrated: int,
    solved: int,
    exponents: dict[str, float],
    calibration: dict[str, Any],
) -> dict[str, Any]:
    """The manifest's quantization details of a streamed export's standard ``graph``."""
    counts = weight_counts(graph)
    if quant.precision == "int8":
        report8 = Int8Report(
            counts["dequantized"],
            1 if quant.quantize_embedding else 0,
            calibrated,
            counts["int8"],
            counts["float"] + counts["scale"],
        )
        return int8_details(report8, calibration, quant)
    if quant.precision == "int4":
        report = Int4Report(
            counts["dequantized"],
            solved,
            1 if quant.quantize_embedding else 0,
            counts["int4"],
            counts["int8"],
            counts["scale"],
            counts["float"],
        )
        return int4_details(quant, report, exponents, calibration, graph)
    return {"weights": "float32"}


def int8_matmul_weights(graph: onnx.ModelProto) -> list[str]:
    """The MatMul weights a graph stores as int8 levels (the embedding table aside), by name."""
    suffix = ".weight.int8"
    return [
        init.name[: -len(".int8")]
        for init in graph.graph.initializer
        if init.data_type == TensorProto.INT8
        and init.name.endswith(suffix)
        and not init.name.startswith("model.embed_tokens.")
    ]


def mixed_record(quant: QuantConfig, graph: onnx.ModelProto) -> dict[str, Any]:
    """Which MatMul weights of an int4 export are at which precision (read from the graph)."""
    int8 = int8_matmul_weights(graph)
    return {
        "rule": {"int8_layers": list(quant.int8_layers), "int8_matmuls": list(quant.int8_matmuls)},
        "int8": {
            "block_size": INT8_GROUP_SIZE,
            "weights": int8,
            "in_model.onnx": "per output channel (TensorRT's int8 form); blocks in the fused graph",
        },
        "int4": {
            "block_size": quant.group_size,
            "weights": "every other decoder MatMul" if int8 else "every decoder MatMul",
        },
    }


def embedding_record(quant: QuantConfig, graph: onnx.ModelProto) -> dict[str, Any]:
    """How an int4 export stored the embedding table and the LM head (read from the graph)."""
    names = {init.name for init in graph.graph.initializer}
    tied = "lm_head.weight.int4" not in names and "lm_head.weight.int8" not in names
    if not quant.quantize_embedding:
        return {"bits": 32, "table": "float32 table and LM head"}
    if "model.embed_tokens.weight.int4" in names:
        return {
            "bits": 4,
            "block_size": quant.embedding_group_size,
            "table": "int4 blocks along each row, stored once, transposed [E, V]: "
            "GatherBlockQuantized in the fused graph, a Gather of its bytes in model.onnx"
            + ("; the tied LM head multiplies by the same bytes" if tied else ""),
            "lm_head": "the table" if tied else f"int{quant.lm_head_bits}",
        }
    head = "the int8 table" if tied and quant.lm_head_bits == 8 else f"int{quant.lm_head_bits}"
    return {"bits": 8, "table": "int8, one scale per row", "lm_head": head}


def int4_details(
    quant: QuantConfig,
    report: Int4Report,
    exponents: dict[str, float],
    calibration: dict[str, Any],
    graph: onnx.ModelProto,
) -> dict[str, Any]:
    """What an int4 export stored."""
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
        "embedding": embedding_record(quant, graph),
        "quantized_matmuls": report.matmuls,
        "gptq_matmuls": report.solved,
        "int4_weight_bytes": report.int4_bytes,
        "int8_weight_bytes": report.int8_bytes,
        "scale_bytes": report.scale_bytes,
        "float_bytes_left": report.float_bytes_left,
        "onnxruntime": "fused at load into MatMulNBits (4-bit) on the CPU EP, accuracy_level 4",
        "tensorrt": "standard blocked DequantizeLinear (INT4 weight-only, opset 21)",
    }
    details["mixed_precision"] = mixed_record(quant, graph)
    if quant.act_scale:
        details["act_scale"] = {
            "folded_into": "RMSNorm weights (q/k/v, gate/up), v_proj rows (o_proj), "
            "up_proj rows (down_proj); the graph has no extra op",
            "exponents": exponents,
        }
    if quant.needs_calibration:
        details["calibration"] = calibration
    return details


def int8_details(
    report: Int8Report, calibration: dict[str, Any], quant: QuantConfig
) -> dict[str, Any]:
    """What an int8 (or W8A8) export stored."""
    block = quant.group_size if quant.method == "int8" else 0
    return {
        "weights": "int8",
        "activations": "float32",
        "scheme": "weight-only QDQ (DequantizeLinear -> MatMul): TensorRT's int8 weight form in "
        "model.onnx" + (f"; blocked in {ORT_GRAPH_FILE} (the CPU form)" if block else ""),
        "symmetric": True,
        "zero_point": 0,
        "granularity": "model.onnx: per-channel (axis 1: output channels of each [in, out] "
        "MatMul weight)"
        + (
            f"; {ORT_GRAPH_FILE}: block-wise, one scale per {block} inputs of each output "
            "channel, after SmoothQuant (model.onnx: the weights before it)"
            if block
            else ""
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
