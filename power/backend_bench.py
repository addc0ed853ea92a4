"""One bundle on every usable runtime backend: speed, energy, memory and agreement with the CPU.

For each backend (``ort-cpu`` first: it is the reference) :func:`bench_backend` checks that the
backend is usable here with the runtime's own check, loads the bundle on it, warms it up, then
measures ``repeats`` greedy generations of ``new_tokens`` after a fixed-length prompt::

    prefill   the prompt (its tokens over the time to the first token), median over the runs
    decode    the generated tokens after the first, median over the runs; tok/J over all runs
    memory    peak RSS over load + warm-up + runs, GPU memory after them (NVML / jtop)
    agreement against the reference (:mod:`edge_sdk.power.bench_agreement`)

The power module never imports the runtime: :class:`BenchRuntime` is what the CLI top hands in
(``edge_sdk.runtime.load`` and the backends' availability checks).
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from edge_sdk.errors import BackendUnavailableError, EdgeError
from edge_sdk.power.bench_agreement import Reference, agreement, teacher_forced_logits
from edge_sdk.power.efficiency import EfficiencyLog, EfficiencySummary, PhaseFigures
from edge_sdk.power.process_memory import gpu_memory, reset_peak_rss, rss_bytes
from edge_sdk.power.sampler import PowerSampler
from edge_sdk.power.sensors import PowerSensor

__all__ = [
    "CPU_VARIANTS",
    "REFERENCE",
    "BackendResult",
    "BenchModel",
    "BenchPlan",
    "BenchRuntime",
    "bench_backend",
    "combine_runs",
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
    shared first token, so the measured prompt is not reused from the cache), ``new_tokens``,
    ``repeats`` measured generations."""

    prompt_ids: list[int]
    warmup_ids: list[int]
    new_tokens: int
    sensor: PowerSensor | None = None
    interval: float | None = None
    repeats: int = 3
    baseline_s: float = 0.2  # power sampled before the prompt starts


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


def combine_runs(runs: Sequence[PhaseFigures]) -> dict[str, Any] | None:
    """One phase over several runs of the same size: the median rate (and every run's), the
    energy per run and tokens per joule over all of them (a ~10 Hz sensor sees a short prefill
    only across runs); None without runs."""
    if not runs:
        return None
    rates = [p.tokens_per_s for p in runs if p.tokens_per_s is not None]
    tokens = sum(p.tokens or 0 for p in runs)
    duration = sum(p.duration_s for p in runs)
    energies = [p.energy_j for p in runs]
    energy = sum(e for e in energies if e is not None) if None not in energies else None
    peaks = [p.peak_w for p in runs if p.peak_w is not None]
    return {
        "tokens": runs[0].tokens,
        "runs": len(runs),
        "duration_s": statistics.median(p.duration_s for p in runs),
        "tokens_per_s": statistics.median(rates) if rates else None,
        "tokens_per_s_runs": rates,
        "energy_j": energy / len(runs) if energy is not None else None,
        "avg_w": energy / duration if energy is not None and duration > 0 else None,
        "peak_w": max(peaks) if peaks else None,
        "tokens_per_joule": tokens / energy if energy and tokens else None,
        "mj_per_token": 1000.0 * energy / tokens if energy is not None and tokens else None,
    }


def _timed_generation(
    model: BenchModel, plan: BenchPlan, prompt_ids: list[int]
) -> tuple[EfficiencySummary, Any]:
    """One greedy generation after ``prompt_ids``: its phases (power included) and result."""
    log = EfficiencyLog()
    sampler = (
        PowerSampler(plan.sensor, plan.interval, on_sample=log.add_sample) if plan.sensor else None
    )
    try:
        if sampler:
            sampler.start()
            time.sleep(plan.baseline_s)
        stream = model.stream(prompt_ids, max_new_tokens=plan.new_tokens, ignore_eos=True)
        log.start(prompt_tokens=len(stream.prompt_ids))
        for event in stream:
            log.token(token_id=event.token_id)
        log.stop()
    finally:
        if sampler:
            sampler.stop()
    return log.summary(), stream.result


def _measure(model: BenchModel, plan: BenchPlan, result: BackendResult) -> None:
    """``plan.repeats`` generations, the measured prompt and the warm-up one in turn (so no run
    finds its prompt in the cache); the first one's ids are the backend's greedy ids."""
    runs: dict[str, list[PhaseFigures]] = {"prefill": [], "decode": []}
    cached = 0
    for repeat in range(plan.repeats):
        ids = plan.prompt_ids if repeat % 2 == 0 else plan.warmup_ids
        summary, generation = _timed_generation(model, plan, ids)
        for phase in summary.phases:
            runs[phase.name].append(phase)
        cached = max(cached, generation.stats.cached_tokens)
        if repeat == 0:
            result.token_ids = list(generation.token_ids)
    result.prefill, result.decode = combine_runs(runs["prefill"]), combine_runs(runs["decode"])
    result.cached_tokens = cached


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


def _run_loaded(
    model: BenchModel,
    name: str,
    plan: BenchPlan,
    reference: Reference | None,
    result: BackendResult,
) -> Reference | None:
    """Warm up, measure, record memory and agreement in ``result``; for the reference backend,
    return its :class:`Reference`."""
    started = time.perf_counter()
    model.generate(plan.warmup_ids, max_new_tokens=min(4, plan.new_tokens), ignore_eos=True)
    result.warmup_s = time.perf_counter() - started
    _measure(model, plan, result)
    on_gpu = CPU_VARIANTS.get(name, (name,))[0] != REFERENCE
    before, peak = (result.memory or {}).get("rss_before_bytes"), rss_bytes("VmHWM")
    result.memory = {
        "rss_before_bytes": before,
        "rss_peak_bytes": peak,
        "rss_added_bytes": peak - before if peak is not None and before is not None else None,
        "gpu": gpu_memory(on_gpu).to_dict(),
    }
    if name == REFERENCE:  # its own agreement: the step-by-step path against generation
        logits = teacher_forced_logits(model.backend, plan.prompt_ids, result.token_ids)
        reference = Reference(name, result.token_ids, logits)
    elif reference is not None:  # fed the reference's ids, whatever this backend picked
        logits = teacher_forced_logits(model.backend, plan.prompt_ids, reference.tokens)
    if reference is not None:
        result.agreement = agreement(reference, result.token_ids, logits).to_dict()
    return reference if name == REFERENCE else None


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
    the :class:`Reference` the others are compared with. A backend the runtime's check refuses,
    or that refuses to start (:class:`BackendUnavailableError`: e.g. no engine built for this
    GPU), is ``unavailable``; any other error while it loads or runs makes it ``failed``."""
    reason = _check(runtime, name, has_fused_graph)
    if reason is not None:
        return BackendResult(name, "unavailable", reason), None
    base, options = CPU_VARIANTS.get(name, (name, {}))
    reset_peak_rss()
    result = BackendResult(name, "ok", memory={"rss_before_bytes": rss_bytes()})
    model: BenchModel | None = None
    own_reference = None
    try:
        started = time.perf_counter()
        try:
            model = runtime.load(bundle, backend=base, verify=False, **options)
        except BackendUnavailableError as exc:  # listed, but cannot start here (no engine for
            return BackendResult(name, "unavailable", str(exc)), None  # this GPU, no CUDA libs)
        result.load_s = time.perf_counter() - started
        result.device = str(model.backend.device)
        own_reference = _run_loaded(model, name, plan, reference, result)
    except Exception as exc:  # one backend's failure is a row of the report, not the end of it
        if debug:
            raise
        what = str(exc).strip() if isinstance(exc, EdgeError) else f"{type(exc).__name__}: {exc}"
        result.status, result.reason = "failed", what.splitlines()[0] if what else repr(exc)
        own_reference = None
    finally:
        if model is not None:
            model.close()
        del model
        gc.collect()
    return result, own_reference
