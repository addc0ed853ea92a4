"""How much a quantized export changed the model: teacher-forced comparison on held-out text.

Both graphs (float and quantized) run in onnxruntime on the same windows of held-out text. We
report the perplexity of each, their ratio, top-1 agreement (how often the most likely next token
is the same) and the mean KL divergence of the quantized next-token distribution from the float
one. The gate (:data:`THRESHOLDS`) fails an export that falls below it unless forced.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np

from edge_sdk.errors import AccuracyError

__all__ = ["THRESHOLDS", "AccuracyReport", "LogitsModel", "apply_gate", "compare_on_text"]

# Per precision: the least top-1 agreement and the largest perplexity ratio an export may have.
# Defaults sized from the trained demo and bench models (benchmarks/bench_quant.py): fp16 is near
# lossless, int8 weight-only close, W8A8 and int4 (16 levels per block) measurably looser.
THRESHOLDS: dict[str, dict[str, float]] = {
    "fp16": {"min_top1_agreement": 0.98, "max_perplexity_ratio": 1.01},
    "int8": {"min_top1_agreement": 0.95, "max_perplexity_ratio": 1.03},
    "w8a8": {"min_top1_agreement": 0.90, "max_perplexity_ratio": 1.08},
    "int4": {"min_top1_agreement": 0.80, "max_perplexity_ratio": 1.25},
}
# A model whose float perplexity is above this share of its vocabulary predicts nearly uniformly
# (random weights): no quantization can be judged on it, so the gate is skipped with a warning.
UNTRAINED_PERPLEXITY_SHARE = 0.5
_ROWS = 32  # positions compared at once


@dataclass(frozen=True)
class AccuracyReport:
    """Teacher-forced accuracy of a quantized graph against the float graph."""

    text_source: str
    tokens: int
    window: int
    perplexity_float: float
    perplexity_quantized: float
    perplexity_ratio: float
    top1_agreement: float
    mean_kl_divergence: float
    gate: str = "not applied"
    computed_as: str = ""  # how the graph computed: the onnxruntime settings, in words

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict for the manifest."""
        return asdict(self)


class LogitsModel(Protocol):
    """A model that answers ``run(input_ids [1, S]) -> (logits [1, S, V], past)``."""

    def run(self, input_ids: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """Logits of a window."""
        ...


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted: np.ndarray = logits - logits.max(axis=-1, keepdims=True)
    log_probs: np.ndarray = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return log_probs


def compare_on_text(
    float_model: LogitsModel,
    quant_model: LogitsModel,
    token_ids: list[int],
    window: int,
    text_source: str,
) -> AccuracyReport:
    """Run both graphs over ``token_ids`` in windows of ``window`` tokens and compare."""
    if len(token_ids) < 2:
        raise AccuracyError(f"the evaluation text {text_source} has fewer than 2 tokens")
    nll_f: list[np.ndarray] = []
    nll_q: list[np.ndarray] = []
    agree: list[np.ndarray] = []
    kl: list[np.ndarray] = []
    for start in range(0, len(token_ids) - 1, window):
        chunk = np.asarray(token_ids[start : start + window + 1], dtype=np.int64)
        if len(chunk) < 2:
            break
        inputs, targets = chunk[None, :-1], chunk[1:]
        logits_f = float_model.run(inputs)[0][0]
        logits_q = quant_model.run(inputs)[0][0]
        for row in range(0, len(targets), _ROWS):  # float64 in slices: [256, 150k] is 300 MB
            rows = slice(row, row + _ROWS)
            logp_f = _log_softmax(logits_f[rows].astype(np.float64))
            logp_q = _log_softmax(logits_q[rows].astype(np.float64))
            picked = np.arange(len(logp_f))
            nll_f.append(-logp_f[picked, targets[rows]])
            nll_q.append(-logp_q[picked, targets[rows]])
            agree.append(logp_f.argmax(-1) == logp_q.argmax(-1))
            kl.append((np.exp(logp_f) * (logp_f - logp_q)).sum(-1))
    ppl_f = float(np.exp(np.concatenate(nll_f).mean()))
    ppl_q = float(np.exp(np.concatenate(nll_q).mean()))
    return AccuracyReport(
        text_source=text_source,
        tokens=int(sum(len(a) for a in agree)),
        window=window,
        perplexity_float=ppl_f,
        perplexity_quantized=ppl_q,
        perplexity_ratio=ppl_q / ppl_f,
        top1_agreement=float(np.concatenate(agree).mean()),
        mean_kl_divergence=float(np.concatenate(kl).mean()),
    )


def apply_gate(
    report: AccuracyReport, precision: str, vocab_size: int, force: bool, graph: str = ""
) -> AccuracyReport:
    """Return ``report`` with its gate verdict; raise :class:`AccuracyError` when it fails
    unforced (``graph``: the file the report is of, named in the message)."""
    limits = THRESHOLDS.get(precision)
    if limits is None:
        return _with_gate(report, "not applied")
    if report.perplexity_float > UNTRAINED_PERPLEXITY_SHARE * vocab_size:
        return _with_gate(
            report,
            "skipped: the float model looks untrained (perplexity "
            f"{report.perplexity_float:.0f} of a {vocab_size}-token vocabulary)",
        )
    failures = []
    if report.top1_agreement < limits["min_top1_agreement"]:
        failures.append(
            f"top-1 agreement {report.top1_agreement:.3f} < {limits['min_top1_agreement']}"
        )
    if report.perplexity_ratio > limits["max_perplexity_ratio"]:
        failures.append(
            f"perplexity ratio {report.perplexity_ratio:.4f} > {limits['max_perplexity_ratio']}"
        )
    if not failures:
        return _with_gate(report, "passed")
    if force:
        return _with_gate(report, "forced: " + "; ".join(failures))
    better = {
        "int4": "try --group-size 32 (smaller blocks) or --int8-layers 0,1,-2,-1 (more layers at "
        "int8), or export --int8",
        "int8": "try --group-size 32 (smaller blocks), or export --fp16",
        "w8a8": "try --calib-method percentile or --exclude, or export --int8",
    }
    of = f" of {graph}" if graph else ""
    raise AccuracyError(
        f"{precision} accuracy{of} is below the threshold ({'; '.join(failures)}). "
        f"{better.get(precision, 'Export --fp32')}; or keep it anyway with --force"
    )


def _with_gate(report: AccuracyReport, gate: str) -> AccuracyReport:
    data = report.to_dict()
    data["gate"] = gate
    return AccuracyReport(**data)
