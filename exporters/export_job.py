"""What one export is asked to do and reads before it starts (shared by both export flows), and
what it returns."""

from __future__ import annotations

import os
import resource
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import onnx

from edge_sdk.bundle import Bundle
from edge_sdk.chat_template import CHAT_TEMPLATE_FILE
from edge_sdk.cli_support import Progress
from edge_sdk.config import DEFAULT_MAX_SEQ_LEN, ModelConfig
from edge_sdk.errors import ExportError
from edge_sdk.exporters.evaluate import AccuracyReport
from edge_sdk.exporters.manifest_record import ModelRecord
from edge_sdk.exporters.quantize.calibration import DEFAULT_CALIBRATION, DEFAULT_HELDOUT, read_text
from edge_sdk.exporters.quantize.config import QuantConfig
from edge_sdk.exporters.tensorrt.compat import CompatReport, check_path
from edge_sdk.exporters.verify import ParityReport
from edge_sdk.tokenizer import Tokenizer

__all__ = [
    "EVAL_WINDOW",
    "PRECISIONS",
    "ExportJob",
    "ExportResult",
    "Precision",
    "make_job",
    "peak_rss_bytes",
    "resolve_quant",
    "result_of",
    "write_text_files",
]

Precision = Literal["int8", "int4", "w8a8", "fp16", "fp32"]
PRECISIONS = ("int8", "int4", "w8a8", "fp16", "fp32")
EVAL_WINDOW = 256
PARITY_TOKENS = 16


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
    seconds: float = 0.0  # wall time of the whole export
    peak_rss_bytes: int = 0  # the process's peak resident memory at the end of the export

    @property
    def context_capped(self) -> bool:
        """The bundle holds fewer positions than the model supports."""
        return self.bundle.max_sequence_length < self.bundle.config.max_position_embeddings


@dataclass
class ExportJob:
    """An export's settings and the text it reads, resolved before the model's weights are."""

    model: ModelRecord
    tokenizer_json: str
    quant: QuantConfig
    seq_limit: int
    requested_max_seq_len: int | None
    heldout: list[int]
    heldout_source: str
    calib_ids: list[int]
    calibration: dict[str, Any]
    force: bool
    evaluate: bool
    ort_graph: bool
    progress: Progress
    notes: list[str] = field(default_factory=list)

    @property
    def config(self) -> ModelConfig:
        """The model's configuration."""
        return self.model.config

    @property
    def window(self) -> int:
        """Tokens per evaluation and calibration window."""
        return min(EVAL_WINDOW, self.seq_limit)

    @property
    def parity_prompt(self) -> list[int]:
        """The tokens the graph is checked on (prefill, then decode)."""
        return self.heldout[: min(PARITY_TOKENS, len(self.heldout))]

    def note(self, message: str) -> None:
        """Something the user should know: in the result and on the progress stream."""
        self.notes.append(message)
        self.progress.note(message)


def resolve_quant(precision: str | None, quant: QuantConfig | None) -> QuantConfig:
    """The config an export runs: ``quant``, or the default of ``precision`` (int8)."""
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


def source_label(path: Path) -> str:
    """How the manifest names a text: ``built-in:NAME`` for the packaged ones."""
    return f"built-in:{path.name}" if path.parent == DEFAULT_HELDOUT.parent else str(path)


def make_job(
    model: ModelRecord,
    tokenizer_json: str,
    quant: QuantConfig,
    *,
    calib_text: str | os.PathLike[str] | None,
    eval_text: str | os.PathLike[str] | None,
    eval_tokens: int,
    max_seq_len: int | None,
    force: bool,
    evaluate: bool,
    ort_graph: bool,
    progress: Progress,
) -> ExportJob:
    """Resolve the context limit and read the evaluation and calibration text."""
    config = model.config
    seq_limit = _max_seq_len(max_seq_len, config.max_position_embeddings)
    tokenizer = Tokenizer.from_str(tokenizer_json)
    heldout_path = Path(eval_text) if eval_text else DEFAULT_HELDOUT
    heldout = tokenizer.encode(read_text(heldout_path, "evaluation"))[:eval_tokens]
    calib_ids: list[int] = []
    calibration: dict[str, Any] = {}
    if quant.needs_calibration:
        calib_path = Path(calib_text) if calib_text else DEFAULT_CALIBRATION
        calib_ids = tokenizer.encode(read_text(calib_path, "calibration"))[:eval_tokens]
        calibration = {"source": source_label(calib_path), "tokens": len(calib_ids)}
    job = ExportJob(
        model,
        tokenizer_json,
        quant,
        seq_limit,
        max_seq_len,
        heldout,
        source_label(heldout_path),
        calib_ids,
        calibration,
        force,
        evaluate,
        ort_graph,
        progress,
    )
    if max_seq_len is None and seq_limit < config.max_position_embeddings:
        job.note(
            f"context capped at {seq_limit} tokens (the model supports "
            f"{config.max_position_embeddings}): pass --max-seq-len N to raise it"
        )
    return job


def write_text_files(folder: Path, job: ExportJob) -> None:
    """The bundle's tokenizer and chat template."""
    (folder / "tokenizer.json").write_text(job.tokenizer_json, encoding="utf-8")
    template = job.model.chat_template
    if template is not None:
        (folder / CHAT_TEMPLATE_FILE).write_text(template.template, encoding="utf-8")


def peak_rss_bytes() -> int:
    """This process's peak resident memory so far."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def borrowed_bytes(graph: Path) -> int:
    """Bytes ``graph`` reads from another graph's data file (the tensors both graphs store
    alike, written once: ``stream.onnx_builder.GraphBuilder``'s lender), each place once."""
    if not graph.is_file():
        return 0
    own = f"{graph.name}.data"
    places: dict[tuple[str, str], int] = {}
    for init in onnx.load(str(graph), load_external_data=False).graph.initializer:
        external = {entry.key: entry.value for entry in init.external_data}
        if external and external.get("location") != own:
            places[(external["location"], external.get("offset", "0"))] = int(external["length"])
    return sum(places.values())


def result_of(
    job: ExportJob, bundle: Bundle, parity: ParityReport, accuracy: AccuracyReport | None
) -> ExportResult:
    """The result of a written bundle, with its TensorRT check."""
    quant, config = job.quant, job.config
    onnx_bytes = sum(
        rec["size"]
        for name, rec in bundle.manifest["files"].items()
        if name.startswith("model.onnx")
    ) + borrowed_bytes(bundle.path / "model.onnx")
    # reported, not enforced: TensorRT is optional (the standard graph is its form)
    trt_report = check_path(bundle.path)
    return ExportResult(
        bundle,
        quant.precision,
        onnx_bytes,
        4 * config.parameter_count(),
        parity,
        accuracy,
        quant,
        trt_report,
        tuple(job.notes),
        job.requested_max_seq_len,
    )
