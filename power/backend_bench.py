"""One bundle on every usable runtime backend: speed, energy, memory and agreement with the CPU.

For each backend (``ort-cpu`` first: it is the reference) :func:`bench_backend` checks that the
backend is usable here with the runtime's own check, loads the bundle on it, warms it up, then
measures one greedy generation of ``new_tokens`` after a fixed ``prompt_tokens``-token prompt::

    prefill   the prompt (its tokens over the time to the first token)
    decode    the generated tokens after the first
    memory    peak RSS over load + warm-up + generation, GPU memory after it (NVML / jtop)
    agreement the generated ids against the reference's (matching prefix), and a teacher-forced
              pass over the reference's ids: top-1 agreement and the largest logit difference

The power module never imports the runtime: :class:`BenchRuntime` is what the CLI top hands in
(``edge_sdk.runtime.load`` and the backends' availability checks).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edge_sdk.errors import BackendUnavailableError, EdgeError
from edge_sdk.power.efficiency import EfficiencyLog, PhaseFigures
from edge_sdk.power.process_memory import gpu_memory, reset_peak_rss, rss_bytes
from edge_sdk.power.sampler import PowerSampler
from edge_sdk.power.sensors import PowerSensor

__all__ = [
    "CPU_VARIANTS",
    "REFERENCE",
    "Agreement",
    "BackendResult",
    "BenchModel",
    "BenchPlan",
    "BenchRuntime",
    "Reference",
    "bench_backend",
]

#: The backend every other one is compared with.
REFERENCE = "ort-cpu"
#: Report names that run a runtime backend with other load options: the standard graph (the one
#: TensorRT gets) on the CPU, which separates "another graph" from "another device".
CPU_VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "ort-cpu-standard": ("ort-cpu", {"fused_graph": False}),
}


class BenchModel(Protocol):
    """What the benchmark uses of a loaded runtime ``Generator``."""

    backend: Any

    def stream(self, prompt: Any, **options: Any) -> Any: ...

    def generate(self, prompt: Any, **options: Any) -> Any: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class BenchRuntime:
    """The runtime, as the CLI top hands it in: ``load`` (``edge_sdk.runtime.load``),
    ``backends`` (its backend names), ``check(name)`` (raises
    :class:`~edge_sdk.errors.BackendUnavailableError` naming what to install) and
    ``onnxruntime`` (``version``, ``providers``) for the host record."""

    load: Callable[..., BenchModel]
    backends: tuple[str, ...]
    check: Callable[[str], None]
    onnxruntime: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BenchPlan:
    """What every backend runs: ``prompt_ids`` (measured), ``warmup_ids`` (the same length, no
    shared first token, so the measured prompt is not reused from the cache), ``new_tokens``."""

    prompt_ids: list[int]
    warmup_ids: list[int]
    new_tokens: int
    sensor: PowerSensor | None = None
    interval: float | None = None
    baseline_s: float = 0.2  # power sampled before the prompt starts


@dataclass(frozen=True)
class Reference:
    """The reference backend's greedy ids and its teacher-forced logits [n, vocab]."""

    name: str
    tokens: list[int]
    logits: np.ndarray


@dataclass(frozen=True)
class Agreement:
    """A backend's greedy ids against the reference's over the first ``tokens`` ids."""

    reference: str
    tokens: int
    matching_prefix: int  # generated ids equal to the reference's before the first difference
    top1_agreement: float  # teacher-forced on the reference's ids: share of equal argmax
    max_logit_diff: float  # teacher-forced: largest |logit - reference logit|

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "matching_prefix_fraction": self.matching_prefix / self.tokens}


@dataclass
class BackendResult:
    """One backend's row of the report; ``status`` is ``ok``, ``unavailable`` (the runtime's
    check says why) or ``failed`` (it did not start or run: ``reason``)."""

    name: str
    status: str
    reason: str | None = None
    device: str | None = None
    load_s: float | None = None
    warmup_s: float | None = None
    prefill: dict[str, Any] | None = None
    decode: dict[str, Any] | None = None
    cached_tokens: int | None = None
    memory: dict[str, Any] | None = None
    agreement: dict[str, Any] | None = None
    token_ids: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _phase(p: PhaseFigures | None) -> dict[str, Any] | None:
    if p is None:
        return None
    return {
        "tokens": p.tokens,
        "duration_s": p.duration_s,
        "tokens_per_s": p.tokens_per_s,
        "energy_j": p.energy_j,
        "avg_w": p.avg_w,
        "peak_w": p.peak_w,
        "tokens_per_joule": p.tokens_per_joule,
        "mj_per_token": p.mj_per_token,
    }


def _timed_generation(model: BenchModel, plan: BenchPlan) -> tuple[EfficiencyLog, Any]:
    """One greedy generation of the plan's prompt, its token times and power in the log."""
    log = EfficiencyLog()
    sampler = (
        PowerSampler(plan.sensor, plan.interval, on_sample=log.add_sample) if plan.sensor else None
    )
    try:
        if sampler:
            sampler.start()
            time.sleep(plan.baseline_s)
        stream = model.stream(plan.prompt_ids, max_new_tokens=plan.new_tokens, ignore_eos=True)
        log.start(prompt_tokens=len(stream.prompt_ids))
        for event in stream:
            log.token(token_id=event.token_id)
        log.stop()
    finally:
        if sampler:
            sampler.stop()
    return log, stream.result


def teacher_forced_logits(model: BenchModel, prompt_ids: Sequence[int], ids: Sequence[int]) -> Any:
    """Logits [len(ids), vocab] after the prompt and after each of ``ids`` but the last, one
    decode step at a time on the model's backend (the reference's ids, whatever this backend
    would have picked)."""
    backend = model.backend
    backend.reset()
    backend.allocate(len(prompt_ids) + len(ids))
    rows = [np.array(backend.forward(np.asarray(prompt_ids, dtype=np.int64)), copy=True)]
    for token in ids[:-1]:
        rows.append(np.array(backend.forward(np.asarray([token], dtype=np.int64)), copy=True))
    backend.reset()
    return np.stack(rows)


def agreement(reference: Reference, generated: Sequence[int], logits: Any) -> Agreement:
    """``generated`` ids and teacher-forced ``logits`` against the reference."""
    n = min(len(reference.tokens), len(generated), len(logits))
    prefix = 0
    while prefix < n and generated[prefix] == reference.tokens[prefix]:
        prefix += 1
    top1 = np.argmax(logits[:n], axis=-1) == np.asarray(reference.tokens[:n])
    diff = np.abs(np.asarray(logits[:n], np.float32) - reference.logits[:n])
    return Agreement(reference.name, n, prefix, float(top1.mean()), float(diff.max()))


def _check(runtime: BenchRuntime, name: str, has_fused_graph: bool) -> str | None:
    """Why backend ``name`` is unusable here, or None."""
    base = CPU_VARIANTS.get(name, (name, {}))[0]
    if name in CPU_VARIANTS and not has_fused_graph:
        return f"the bundle has no fused graph: {REFERENCE} already runs its standard graph"
    try:
        runtime.check(base)
    except BackendUnavailableError as exc:
        return str(exc)
    return None


def bench_backend(
    runtime: BenchRuntime,
    bundle: str | Path,
    name: str,
    plan: BenchPlan,
    reference: Reference | None,
    has_fused_graph: bool,
    debug: bool = False,
) -> tuple[BackendResult, Reference | None]:
    """Measure ``bundle`` on backend ``name``; returns its row and, for the reference backend,
    the :class:`Reference` the others are compared with."""
    reason = _check(runtime, name, has_fused_graph)
    if reason is not None:
        return BackendResult(name, "unavailable", reason), None
    base, options = CPU_VARIANTS.get(name, (name, {}))
    result = BackendResult(name, "ok")
    reset_peak_rss()
    rss_before = rss_bytes()
    model: BenchModel | None = None
    try:
        started = time.perf_counter()
        model = runtime.load(bundle, backend=base, verify=False, **options)
        result.load_s = time.perf_counter() - started
        result.device = str(model.backend.device)
        started = time.perf_counter()
        model.generate(plan.warmup_ids, max_new_tokens=min(4, plan.new_tokens), ignore_eos=True)
        result.warmup_s = time.perf_counter() - started
        log, generation = _timed_generation(model, plan)
        summary = log.summary()
        phases = {p.name: p for p in summary.phases}
        result.prefill, result.decode = _phase(phases.get("prefill")), _phase(phases.get("decode"))
        result.cached_tokens = generation.stats.cached_tokens
        result.token_ids = list(generation.token_ids)
        on_gpu = base != REFERENCE
        result.memory = {
            "rss_before_bytes": rss_before,
            "rss_peak_bytes": rss_bytes("VmHWM"),
            "gpu": gpu_memory(on_gpu).to_dict(),
        }
        if name == REFERENCE:  # its own agreement: the step-by-step path against generation
            logits = teacher_forced_logits(model, plan.prompt_ids, result.token_ids)
            reference = Reference(name, result.token_ids, logits)
        elif reference is not None:  # fed the reference's ids, whatever this backend picked
            logits = teacher_forced_logits(model, plan.prompt_ids, reference.tokens)
        if reference is not None:
            result.agreement = agreement(reference, result.token_ids, logits).to_dict()
    except Exception as exc:  # one backend's failure is a row of the report, not the end of it
        if debug:
            raise
        result.status = "failed"
        what = str(exc) if isinstance(exc, EdgeError) else f"{type(exc).__name__}: {exc}"
        result.reason = what.strip().splitlines()[0] if what.strip() else type(exc).__name__
        reference = None if name == REFERENCE else reference
    finally:
        if model is not None:
            model.close()
        del model
        gc.collect()
    return result, (reference if name == REFERENCE else None)
