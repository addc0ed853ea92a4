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
from edge_sdk.chat_template import CHAT_TEMPLATE_FILE
from edge_sdk.cli_support import Progress
from edge_sdk.config import DEFAULT_MAX_SEQ_LEN, ModelConfig
from edge_sdk.errors import ExportError
from edge_sdk.exporters.checkpoint import LoadedModel
from edge_sdk.exporters.evaluate import THRESHOLDS, AccuracyReport, apply_gate, compare_on_text
from edge_sdk.exporters.fused_graph import FUSED_GRAPH_LOSS, UnsupportedGraph
from edge_sdk.exporters.fused_graph_check import GRAPH_TOLERANCE, write_ort_graph
from edge_sdk.exporters.io_names import graph_io_names
from edge_sdk.exporters.loaders import load_model
from edge_sdk.exporters.onnx_export import OPSET, export_onnx, save_onnx
from edge_sdk.exporters.ort_check import OrtModel
from edge_sdk.exporters.quantize.calibration import DEFAULT_CALIBRATION, DEFAULT_HELDOUT, read_text
from edge_sdk.exporters.quantize.config import QuantConfig
from edge_sdk.exporters.quantize.pipeline import Quantized, quantize_model
from edge_sdk.exporters.tensorrt.compat import CompatReport, check_path
from edge_sdk.exporters.verify import PARITY_TOLERANCE, ParityReport, check_parity
from edge_sdk.onnx_io import graph_io
from edge_sdk.tokenizer import Tokenizer

__all__ = ["PRECISIONS", "ExportResult", "Precision", "export"]

Precision = Literal["int8", "int4", "w8a8", "fp16", "fp32"]
PRECISIONS = ("int8", "int4", "w8a8", "fp16", "fp32")
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
    quant: QuantConfig | None = None
    tensorrt: CompatReport | None = None  # the graph checked as edge-engine would build it
    notes: tuple[str, ...] = ()  # what the user should know: a capped context, a skipped graph
    requested_max_seq_len: int | None = None  # max_seq_len as asked (None: the default)

    @property
    def context_capped(self) -> bool:
        """The bundle holds fewer positions than the model supports."""
        return self.bundle.max_sequence_length < self.bundle.config.max_position_embeddings


def export(
    model: str | os.PathLike[str] | LoadedModel,
    output: str | os.PathLike[str],
    precision: Precision | None = None,
    *,
    quant: QuantConfig | None = None,
    calib_text: str | os.PathLike[str] | None = None,
    eval_text: str | os.PathLike[str] | None = None,
    eval_tokens: int = 2048,
    max_seq_len: int | None = None,
    force: bool = False,
    ort_graph: bool = True,
    progress: Progress | None = None,
    revision: str | None = None,
) -> ExportResult:
    """Export ``model`` (``model.pt``, Hugging Face folder or hub id, loaded model) to a bundle.

    ``quant`` (a :class:`QuantConfig`) says how to store the weights; ``precision`` is a shorthand
    for a default config (``"int8"`` when neither is given: int8 per-channel weights). Every
    quantized export (anything but fp32) is checked against the float graph on ``eval_text``
    (default: the packaged held-out text): perplexity of both, top-1 agreement and mean KL go into
    the manifest, and below the precision's threshold (:data:`THRESHOLDS`) it raises
    :class:`~edge_sdk.AccuracyError` unless ``force``. ``calib_text`` (default: the packaged
    calibration text) feeds clipping, GPTQ, AWQ and activation ranges. ``ort_graph``: also write
    ``model.ort.onnx``, the same weights for onnxruntime's CPU EP with fused attention (fp32, int8
    and int4; about 2x the CPU decode speed, twice the bytes on disk). ``revision``: the branch,
    tag or commit of a hub id (``owner/name``, fetched into the Hugging Face cache).
    ``max_seq_len``: positions the bundle holds (default: the model's ``max_position_embeddings``,
    at most :data:`DEFAULT_MAX_SEQ_LEN`). The result's ``notes`` say, in the user's words, what
    the export decided for them (the model's context capped by that default, a fused graph that
    could not be built and what that costs); each also goes to ``progress``.
    """
    quant = _resolve(precision, quant)
    if eval_tokens < 2:
        raise ExportError(f"eval_tokens must be at least 2, got {eval_tokens}")
    name = quant.precision
    stages = 4 if name == "fp32" else 6
    progress = progress or Progress(stages, quiet=True)
    progress.stage("load", str(model if not isinstance(model, LoadedModel) else model.source))
    loaded = model if isinstance(model, LoadedModel) else load_model(model, revision, progress)
    config = loaded.config
    seq_limit = _max_seq_len(max_seq_len, config.max_position_embeddings)
    notes: list[str] = []
    if max_seq_len is None and seq_limit < config.max_position_embeddings:
        notes.append(
            f"context capped at {seq_limit} tokens (the model supports "
            f"{config.max_position_embeddings}): pass --max-seq-len N to raise it"
        )
        progress.note(notes[-1])
    tokenizer = Tokenizer.from_str(loaded.tokenizer_json)
    heldout_path = Path(eval_text) if eval_text else DEFAULT_HELDOUT
    heldout = tokenizer.encode(read_text(heldout_path, "evaluation"))[:eval_tokens]
    window = min(EVAL_WINDOW, seq_limit)

    with tempfile.TemporaryDirectory(prefix="edge-export-") as work, BundleWriter(output) as writer:
        progress.stage(
            "export", f"ONNX opset {OPSET}, {config.parameter_count() / 1e6:.1f} M parameters"
        )
        float_path = export_onnx(loaded.model, Path(work) / "float.onnx")
        progress.stage("verify", "ONNX vs PyTorch, prefill and decode with a KV cache")
        float_ort = OrtModel(float_path, config)
        parity = check_parity(loaded.model, float_ort, heldout[: min(16, len(heldout))])
        calib_ids: list[int] = []
        calibration: dict[str, Any] = {}
        if quant.needs_calibration:
            calib_path = Path(calib_text) if calib_text else DEFAULT_CALIBRATION
            calib_ids = tokenizer.encode(read_text(calib_path, "calibration"))[:eval_tokens]
            calibration = {"source": _source(calib_path), "tokens": len(calib_ids)}
        if name != "fp32":
            progress.stage(
                "quantize",
                quant.label + (f", calibration {calibration['source']}" if calibration else ""),
            )
        result = quantize_model(
            loaded.model, float_path, quant, calib_ids, window, calibration, progress
        )
        files = save_onnx(result.graph, writer.dir / "model.onnx")
        _check(files[0])
        accuracy: AccuracyReport | None = None
        if name != "fp32":
            progress.stage("evaluate", f"{len(heldout)} held-out tokens, float32 vs {quant.label}")
            exported = OrtModel(files[0], config, result.session_config)
            accuracy = compare_on_text(float_ort, exported, heldout, window, _source(heldout_path))
            accuracy = apply_gate(accuracy, name, config.vocab_size, force)
        fused = (
            _ort_graph(
                result,
                config,
                name,
                seq_limit,
                writer.dir,
                files[0],
                heldout[: min(16, len(heldout))],
            )
            if ort_graph
            else {"fused_graph": None, "fused_graph_skipped": "not asked for (--no-ort-graph)"}
        )
        if ort_graph and fused["fused_graph"] is None and name in GRAPH_TOLERANCE:
            notes.append(
                f"{FUSED_GRAPH_LOSS}: {fused['fused_graph_skipped']}; onnxruntime's CPU "
                "EP runs the standard model.onnx instead"
            )
            progress.note(notes[-1])
        progress.stage("write", str(writer.target))
        (writer.dir / "tokenizer.json").write_text(loaded.tokenizer_json, encoding="utf-8")
        if loaded.chat_template is not None:
            (writer.dir / CHAT_TEMPLATE_FILE).write_text(
                loaded.chat_template.template, encoding="utf-8"
            )
        details = {"config": quant.to_dict(), **result.details}
        manifest = _manifest(loaded, name, seq_limit, details, result, parity, accuracy)
        manifest["onnxruntime"].update(fused)
        bundle = writer.commit(manifest)
    onnx_bytes = sum(
        rec["size"]
        for name, rec in bundle.manifest["files"].items()
        if name.startswith("model.onnx")
    )
    float_bytes = 4 * config.parameter_count()
    # reported, not enforced: TensorRT is optional; int8 blocks are the CPU form, not TensorRT's
    trt_report = None if quant.method == "int8" and quant.group_size else check_path(bundle.path)
    return ExportResult(
        bundle,
        quant.precision,
        onnx_bytes,
        float_bytes,
        parity,
        accuracy,
        quant,
        trt_report,
        tuple(notes),
        max_seq_len,
    )


def _ort_graph(
    result: Quantized,
    config: ModelConfig,
    precision: str,
    seq_limit: int,
    folder: Path,
    standard: Path,
    prompt: list[int],
) -> dict[str, Any]:
    """The manifest's ``fused_graph`` entry: the onnxruntime graph written, or why there is none."""
    if precision not in GRAPH_TOLERANCE:
        return {
            "fused_graph": None,
            "fused_graph_skipped": f"none for {precision}: the fused CPU graph is built for "
            f"{', '.join(GRAPH_TOLERANCE)} bundles",
        }
    try:
        entry = write_ort_graph(
            result.graph,
            config,
            precision,
            seq_limit,
            folder,
            standard,
            result.session_config,
            prompt,
        )
    except UnsupportedGraph as exc:
        return {"fused_graph": None, "fused_graph_skipped": str(exc)}
    fused = onnx.load(str(folder / entry["file"]), load_external_data=False)
    entry["io_names"] = graph_io_names(fused, config.num_layers, fused=True)
    return {"fused_graph": entry}


def _resolve(precision: str | None, quant: QuantConfig | None) -> QuantConfig:
    if quant is not None and not isinstance(quant, QuantConfig):
        raise ExportError(f"quant must be a QuantConfig, got {type(quant).__name__}")
    if quant is None:
        if precision is not None and precision not in PRECISIONS:
            raise ExportError(
                f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}"
            )
        return QuantConfig.from_precision(precision or "int8")
    if precision is not None and precision != quant.precision:
        raise ExportError(
            f"precision={precision!r} contradicts quant (a {quant.precision} config); give one"
        )
    return quant


def _max_seq_len(requested: int | None, model_limit: int) -> int:
    if requested is None:
        return min(model_limit, DEFAULT_MAX_SEQ_LEN)
    if requested < 2:
        raise ExportError(f"--max-seq-len must be at least 2, got {requested}")
    if requested > model_limit:
        raise ExportError(
            f"--max-seq-len {requested} exceeds the model's max_position_embeddings ({model_limit})"
        )
    return requested


def _check(path: Path) -> None:
    try:
        onnx.checker.check_model(str(path))
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"the exported graph fails onnx.checker: {exc}") from exc


def _source(path: Path) -> str:
    return f"built-in:{path.name}" if path.parent == DEFAULT_HELDOUT.parent else str(path)


def _manifest(
    loaded: LoadedModel,
    precision: str,
    seq_limit: int,
    quant: dict[str, Any],
    result: Quantized,
    parity: ParityReport,
    accuracy: AccuracyReport | None,
) -> dict[str, Any]:
    config = loaded.config
    io = graph_io(config)
    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": {
            "name": loaded.name,
            "source": loaded.source,
            "config": config.to_dict(),
            "parameters": config.parameter_count(),
        },
        "tokenizer": {"file": "tokenizer.json", "kind": "tokenizers"},
        "chat": loaded.chat_template.manifest_entry() if loaded.chat_template else None,
        "graph": {
            "file": "model.onnx",
            "opset": _opset(result.graph),
            "standard_ops_only": True,
            "inputs": io["inputs"],
            "outputs": io["outputs"],
            "io_names": graph_io_names(result.graph, config.num_layers, fused=False),
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
        "onnxruntime": {"session_config": result.session_config},
        "accuracy": {
            "parity_vs_pytorch": {
                "prefill": parity.prefill,
                "decode": parity.decode,
                "decode_steps": parity.steps,
                "tolerance": PARITY_TOLERANCE,
                "measure": "max |onnx - torch| / max(1, max |torch logits|), float graph",
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
