"""The manifest an export writes (see ARCHITECTURE.md, "The bundle"), shared by both flows."""

from __future__ import annotations

import platform
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from typing import Any

import onnx
import torch

import edge_sdk
from edge_sdk.chat_template import ChatTemplate
from edge_sdk.config import ModelConfig
from edge_sdk.exporters.evaluate import THRESHOLDS, AccuracyReport
from edge_sdk.exporters.io_names import graph_io_names
from edge_sdk.exporters.verify import PARITY_TOLERANCE, ParityReport
from edge_sdk.onnx_io import graph_io

__all__ = ["PARITY_MEASURE", "ModelRecord", "export_manifest"]

PARITY_MEASURE = "max |onnx - torch| / max(1, max |torch logits|), float graph"


@dataclass(frozen=True)
class ModelRecord:
    """Where the exported model came from."""

    name: str
    source: str
    config: ModelConfig
    chat_template: ChatTemplate | None = None


def export_manifest(
    model: ModelRecord,
    precision: str,
    seq_limit: int,
    quant: dict[str, Any],
    graph: onnx.ModelProto,
    session_config: dict[str, str],
    parity: ParityReport,
    accuracy: AccuracyReport | None,
    parity_measure: str = PARITY_MEASURE,
) -> dict[str, Any]:
    """The manifest of a bundle whose standard graph is ``graph`` (weights need not be loaded)."""
    config = model.config
    io = graph_io(config)
    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": {
            "name": model.name,
            "source": model.source,
            "config": config.to_dict(),
            "parameters": config.parameter_count(),
        },
        "tokenizer": {"file": "tokenizer.json", "kind": "tokenizers"},
        "chat": model.chat_template.manifest_entry() if model.chat_template else None,
        "graph": {
            "file": "model.onnx",
            "opset": _opset(graph),
            "standard_ops_only": True,
            "inputs": io["inputs"],
            "outputs": io["outputs"],
            "io_names": graph_io_names(graph, config.num_layers, fused=False),
            "max_sequence_length": seq_limit,
            "kv_cache": {
                "layers": config.num_layers,
                "kv_heads": config.num_kv_heads,
                "head_dim": config.head_dim,
                "dtype": "float32",
                "internal_dtype": "float16" if precision == "fp16" else "float32",
                "input": "past_key_values.{i}.key|value",
                "output": "present.{i}.key|value",
            },
        },
        "precision": {"name": precision, **quant},
        "onnxruntime": {"session_config": session_config},
        "accuracy": {
            "parity_vs_pytorch": {
                "prefill": parity.prefill,
                "decode": parity.decode,
                "decode_steps": parity.steps,
                "tolerance": PARITY_TOLERANCE,
                "measure": parity_measure,
            },
            "quantized_vs_float": accuracy.to_dict() if accuracy else None,
            "thresholds": THRESHOLDS.get(precision),
        },
        "environment": _environment(),
        "engines": [],
    }


def _opset(graph: onnx.ModelProto) -> int:
    return int(next(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")))


def _environment() -> dict[str, Any]:
    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    ort_version = version("onnxruntime") or version("onnxruntime-gpu")
    return {
        "edge_sdk": edge_sdk.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": ort_version,
        "tensorrt": version("tensorrt"),
    }
