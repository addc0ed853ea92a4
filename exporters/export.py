"""The export pipeline: load -> ONNX -> verify -> quantize -> evaluate -> write the bundle."""

from __future__ import annotations

import os
import platform
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import onnx
import torch

import edge_sdk
from edge_sdk.bundle import Bundle, BundleWriter
from edge_sdk.cli_support import Progress
from edge_sdk.errors import ExportError
from edge_sdk.exporters.calibration import DEFAULT_CALIBRATION, DEFAULT_HELDOUT, input_moments, read_text
from edge_sdk.exporters.checkpoint import LoadedModel
from edge_sdk.exporters.evaluate import THRESHOLDS, AccuracyReport, apply_gate, compare_on_text
from edge_sdk.exporters.loaders import load_model
from edge_sdk.exporters.onnx_export import OPSET, export_onnx, save_onnx, share_tied_head
from edge_sdk.exporters.ort_check import INT8_SESSION_CONFIG, OrtModel
from edge_sdk.exporters.quantize import CLIP_RATIOS, quantize_int8
from edge_sdk.exporters.verify import PARITY_TOLERANCE, ParityReport, check_parity
from edge_sdk.onnx_io import graph_io
from edge_sdk.tokenizer import Tokenizer

__all__ = ["export", "ExportResult", "Precision"]

Precision = Literal["int8", "fp32"]
DEFAULT_MAX_SEQ_LEN = 2048
EVAL_WINDOW = 256


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote and measured."""

    bundle: Bundle
    precision: str
    onnx_bytes: int
    float_weight_bytes: int  # the model's parameters in float32, for comparison
    parity: ParityReport
    accuracy: AccuracyReport | None


def export(model: str | os.PathLike[str] | LoadedModel, output: str | os.PathLike[str],
           precision: Precision = "int8", *, calib_text: str | os.PathLike[str] | None = None,
           eval_text: str | os.PathLike[str] | None = None, eval_tokens: int = 2048,
           max_seq_len: int | None = None, force: bool = False,
           progress: Progress | None = None) -> ExportResult:
    """Export ``model`` (a ``model.pt``, a Hugging Face folder, or a loaded model) to a bundle.

    ``precision="int8"`` stores every weight as int8 (per channel) and checks accuracy against the
    float graph on ``eval_text`` (default: the packaged held-out text); below the threshold it
    raises :class:`~edge_sdk.AccuracyError` unless ``force``. ``calib_text`` (default: the packaged
    calibration text) sets each channel's clipping range from activation statistics.
    """
    if precision not in ("int8", "fp32"):
        raise ExportError(f"precision must be 'int8' or 'fp32', got {precision!r}")
    if eval_tokens < 2:
        raise ExportError(f"eval_tokens must be at least 2, got {eval_tokens}")
    stages = 6 if precision == "int8" else 4
    progress = progress or Progress(stages, quiet=True)
    progress.stage("load", str(model if not isinstance(model, LoadedModel) else model.source))
    loaded = model if isinstance(model, LoadedModel) else load_model(model)
    config = loaded.config
    seq_limit = _max_seq_len(max_seq_len, config.max_position_embeddings)
    tokenizer = Tokenizer.from_str(loaded.tokenizer_json)
    heldout_path = Path(eval_text) if eval_text else DEFAULT_HELDOUT
    heldout = tokenizer.encode(read_text(heldout_path, "evaluation"))[:eval_tokens]
    window = min(EVAL_WINDOW, seq_limit)

    with tempfile.TemporaryDirectory(prefix="edge-export-") as work, BundleWriter(output) as writer:
        progress.stage("export", f"ONNX opset {OPSET}, {config.parameter_count() / 1e6:.1f} M parameters")
        float_path = export_onnx(loaded.model, Path(work) / "float.onnx")
        float_graph = onnx.load(str(float_path))
        progress.stage("verify", "ONNX vs PyTorch, prefill and decode with a KV cache")
        float_ort = OrtModel(float_path, config)
        parity = check_parity(loaded.model, float_ort, heldout[:min(16, len(heldout))])
        session_config: dict[str, str] = {}
        accuracy: AccuracyReport | None = None
        quant_details: dict[str, Any] = {"weights": "float32"}
        if precision == "int8":
            calib_path = Path(calib_text) if calib_text else DEFAULT_CALIBRATION
            progress.stage("quantize", f"int8 per-channel weights, calibration {calib_path.name}")
            calib_ids = tokenizer.encode(read_text(calib_path, "calibration"))[:eval_tokens]
            moments = input_moments(loaded.model, calib_ids, window)
            share_tied_head(float_graph)
            graph, report = quantize_int8(float_graph, moments)
            session_config = dict(INT8_SESSION_CONFIG)
            quant_details = _int8_details(report, calib_path, len(calib_ids))
            files = save_onnx(graph, writer.dir / "model.onnx")
            _check(files[0])
            progress.stage("evaluate", f"{len(heldout)} held-out tokens, float vs int8")
            quant_ort = OrtModel(files[0], config, session_config)
            accuracy = compare_on_text(float_ort, quant_ort, heldout, window, _source(heldout_path))
            accuracy = apply_gate(accuracy, precision, config.vocab_size, force)
        else:
            share_tied_head(float_graph)
            files = save_onnx(float_graph, writer.dir / "model.onnx")
            _check(files[0])
        progress.stage("write", str(writer.target))
        (writer.dir / "tokenizer.json").write_text(loaded.tokenizer_json, encoding="utf-8")
        manifest = _manifest(loaded, precision, seq_limit, quant_details, session_config, parity, accuracy)
        bundle = writer.commit(manifest)
    onnx_bytes = sum(rec["size"] for name, rec in bundle.manifest["files"].items() if name.startswith("model.onnx"))
    float_bytes = 4 * config.parameter_count()
    return ExportResult(bundle, precision, onnx_bytes, float_bytes, parity, accuracy)


def _max_seq_len(requested: int | None, model_limit: int) -> int:
    if requested is None:
        return min(model_limit, DEFAULT_MAX_SEQ_LEN)
    if requested < 2:
        raise ExportError(f"--max-seq-len must be at least 2, got {requested}")
    if requested > model_limit:
        raise ExportError(f"--max-seq-len {requested} exceeds the model's max_position_embeddings ({model_limit})")
    return requested


def _check(path: Path) -> None:
    try:
        onnx.checker.check_model(str(path))
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"the exported graph fails onnx.checker: {exc}") from exc


def _source(path: Path) -> str:
    return f"built-in:{path.name}" if path.parent == DEFAULT_HELDOUT.parent else str(path)


def _int8_details(report: Any, calib_path: Path, calib_tokens: int) -> dict[str, Any]:
    return {
        "weights": "int8",
        "activations": "float32",
        "scheme": "weight-only QDQ (DequantizeLinear -> MatMul)",
        "symmetric": True,
        "zero_point": 0,
        "granularity": "per-channel (axis 1: output channels of each [in, out] MatMul weight)",
        "embedding": "int8 per-row (Gather of int8 rows, times the row's scale); a tied LM head "
                     "reuses the table through Transpose -> DequantizeLinear(axis 1)",
        "clipping": f"per channel, activation-weighted least squares over ratios {list(CLIP_RATIOS)}",
        "quantized_matmuls": report.matmuls,
        "quantized_embeddings": report.embeddings,
        "calibrated_matmuls": report.calibrated,
        "calibration": {"source": _source(calib_path), "tokens": calib_tokens},
        "int8_weight_bytes": report.int8_bytes,
        "float_bytes_left": report.float_bytes_left,
    }


def _manifest(loaded: LoadedModel, precision: str, seq_limit: int, quant: dict[str, Any],
              session_config: dict[str, str], parity: ParityReport,
              accuracy: AccuracyReport | None) -> dict[str, Any]:
    config = loaded.config
    io = graph_io(config)
    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": {"name": loaded.name, "source": loaded.source, "config": config.to_dict(),
                  "parameters": config.parameter_count()},
        "tokenizer": {"file": "tokenizer.json", "kind": "tokenizers"},
        "graph": {"file": "model.onnx", "opset": OPSET, "standard_ops_only": True,
                  "inputs": io["inputs"], "outputs": io["outputs"],
                  "max_sequence_length": seq_limit,
                  "kv_cache": {"layers": config.num_layers, "kv_heads": config.num_kv_heads,
                               "head_dim": config.head_dim, "dtype": "float32",
                               "input": "past_key_values.{i}.key|value", "output": "present.{i}.key|value"}},
        "precision": {"name": precision, **quant},
        "onnxruntime": {"session_config": session_config},
        "accuracy": {
            "parity_vs_pytorch": {"prefill": parity.prefill, "decode": parity.decode,
                                  "decode_steps": parity.steps, "tolerance": PARITY_TOLERANCE,
                                  "measure": "max |onnx - torch| / max(1, max |torch logits|), float graph"},
            "quantized_vs_float": accuracy.to_dict() if accuracy else None,
            "thresholds": THRESHOLDS.get(precision),
        },
        "environment": _environment(),
        "engines": [],
    }


def _environment() -> dict[str, Any]:
    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    ort_version = version("onnxruntime") or version("onnxruntime-gpu")
    return {"edge_sdk": edge_sdk.__version__, "python": platform.python_version(),
            "platform": platform.platform(), "torch": torch.__version__, "onnx": onnx.__version__,
            "onnxruntime": ort_version, "tensorrt": version("tensorrt")}
