"""Build a TensorRT engine from a bundle's ONNX graph and add it to the bundle.

The TensorRT calls (8.6 and 10.x Python API) are all in :func:`build_engine` and the helpers
named ``_trt_*``; everything they are given (profiles, workspace cap, flags, the manifest
record) is computed by the pure functions here and in :mod:`edge_sdk.exporters.tensorrt.profiles`.
``tensorrt`` (and ``pycuda``, for the GPU's name) are imported only when an engine is built.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx

from edge_sdk._optional import require
from edge_sdk.board import detect_module, read_board_model
from edge_sdk.bundle import INT8_QDQ_PRECISIONS, Bundle, load_bundle
from edge_sdk.bundle_update import update_bundle
from edge_sdk.cli_support import Progress
from edge_sdk.errors import ExportError
from edge_sdk.exporters.tensorrt.compat import check_model
from edge_sdk.exporters.tensorrt.profiles import (
    MiB,
    Profile,
    WorkspacePlan,
    engine_profiles,
    workspace_plan,
)
from edge_sdk.exporters.tensorrt.rewrite import rewrite_for_tensorrt
from edge_sdk.planner import get_device

__all__ = [
    "DEFAULT_WORKSPACE_MB",
    "EngineOptions",
    "EngineResult",
    "add_engine_record",
    "build_engine",
    "engine_file_name",
    "engine_record",
    "trt_major",
]

#: Workspace when the module is unknown (not a Jetson, no --device) and none is asked for.
DEFAULT_WORKSPACE_MB = 1024


@dataclass(frozen=True)
class EngineOptions:
    """What ``edge-engine`` was asked for (None: decided from the bundle and the module)."""

    fp16: bool = False
    int8: bool | None = None  # None: on for an int8 bundle (explicit Q/DQ)
    workspace_mb: int | None = None
    max_seq_len: int | None = None
    timing_cache: Path | None = None
    builder_level: int | None = None
    dla_core: int | None = None
    device: str | None = None  # planner catalog name; None: detect the module


@dataclass(frozen=True)
class EngineResult:
    """The updated bundle and the manifest record of the new engine."""

    bundle: Bundle
    record: dict[str, Any]


def trt_major(version: str) -> int:
    """Major version of a TensorRT version string ("10.3.0.30" -> 10)."""
    try:
        return int(version.split(".")[0])
    except ValueError:
        return 0


def engine_file_name(precision: str, fp16: bool, int8: bool) -> str:
    """``model.<label>.engine``: int8 (or w8a8) for INT8 Q/DQ engines, int4 for int4 weights, else
    fp16 or fp32."""
    label = (
        precision
        if precision in ("w8a8", "int4")
        else "int8"
        if int8
        else "fp16"
        if fp16
        else "fp32"
    )
    return f"model.{label}.engine"


def resolve_int8(options: EngineOptions, precision: str) -> bool:
    """INT8 kernels: on for int8/w8a8 bundles unless turned off; refused for bundles without int8
    Q/DQ."""
    if options.int8 is None:
        return precision in INT8_QDQ_PRECISIONS
    if options.int8 and precision not in INT8_QDQ_PRECISIONS:
        raise ExportError(
            "--int8 needs an int8 or w8a8 bundle (its Q/DQ scales); export one with "
            "edge-export --int8, this bundle is " + precision
        )
    return options.int8


def plan_workspace(
    bundle: Bundle, options: EngineOptions, max_seq_len: int
) -> WorkspacePlan | None:
    """The planner's cap for the detected (or named) module; None when the module is unknown."""
    name = options.device or detect_module()
    if name is None:
        return None
    return workspace_plan(
        bundle.config, get_device(name), bundle.precision, max_seq_len, options.workspace_mb
    )


def engine_record(
    file: str,
    trt_version: str,
    gpu: dict[str, Any],
    fp16: bool,
    int8: bool,
    profiles: list[Profile],
    workspace_bytes: int,
    options: EngineOptions,
    max_seq_len: int,
    build_seconds: float,
    timing_cache_hit: bool,
) -> dict[str, Any]:
    """The manifest entry of one engine (``manifest["engines"]``)."""
    return {
        "file": file,
        "tensorrt": trt_version,
        "gpu": gpu["name"],
        "compute_capability": gpu["compute_capability"],
        "module": gpu.get("module"),
        "precision": {"fp16": fp16, "int8": int8, "explicit_quantization": int8},
        "max_sequence_length": max_seq_len,
        "profiles": [p.to_dict() for p in profiles],
        "workspace_mb": workspace_bytes // MiB,
        "builder_optimization_level": options.builder_level,
        "dla_core": options.dla_core,
        "build_seconds": round(build_seconds, 1),
        "timing_cache_reused": timing_cache_hit,
    }


def add_engine_record(manifest: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """The manifest with ``record`` added, replacing an entry for the same file."""
    engines = [e for e in manifest.get("engines", []) if e.get("file") != record["file"]]
    manifest["engines"] = [*engines, record]
    environment = dict(manifest.get("environment", {}))
    environment["tensorrt"] = record["tensorrt"]
    manifest["environment"] = environment
    return manifest


def gpu_identity() -> dict[str, Any]:
    """Name and compute capability of CUDA device 0 (pycuda), plus the Jetson module if any."""
    cuda = require("pycuda.driver", "Recording the engine's GPU")
    cuda.init()
    device = cuda.Device(0)
    major, minor = device.compute_capability()
    return {
        "name": str(device.name()),
        "compute_capability": f"{major}.{minor}",
        "module": detect_module(),
        "board": read_board_model(),
    }


def _trt_progress_monitor(trt: Any, progress: Progress) -> Any:
    """A TensorRT 10 ``IProgressMonitor`` that prints the builder's phases on stderr."""

    class Monitor(trt.IProgressMonitor):  # type: ignore[misc, name-defined, unused-ignore]
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self.steps: dict[str, int] = {}

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            self.steps[phase_name] = num_steps
            if parent_phase is None:
                progress.stage("build", phase_name)

        def step_complete(self, phase_name: str, step: int) -> bool:
            if phase_name in self.steps and len(self.steps) == 1:
                progress.update(step + 1, self.steps[phase_name], phase_name)
            return True  # False would cancel the build

        def phase_finish(self, phase_name: str) -> None:
            self.steps.pop(phase_name, None)

    return Monitor()


def _trt_parse(trt: Any, logger: Any, builder: Any, model_bytes: bytes, onnx_path: Path) -> Any:
    flags = (
        0
        if trt_major(trt.__version__) >= 10
        else (1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH))
    )
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(model_bytes, str(onnx_path)):  # path: where external weights live
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(
            f"TensorRT {trt.__version__} cannot parse {onnx_path}: {errors}. "
            "Run edge-engine --check on it for what to change"
        )
    return network, parser


def _trt_config(
    trt: Any,
    builder: Any,
    fp16: bool,
    int8: bool,
    workspace: int,
    profiles: list[Profile],
    options: EngineOptions,
    cache_bytes: bytes,
) -> Any:
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace)
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    if int8:
        config.set_flag(trt.BuilderFlag.INT8)
    if options.builder_level is not None:
        config.builder_optimization_level = int(options.builder_level)
    if options.dla_core is not None:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = int(options.dla_core)
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    for profile in profiles:
        trt_profile = builder.create_optimization_profile()
        for name, (low, opt, high) in profile.shapes.items():
            trt_profile.set_shape(name, low, opt, high)
        config.add_optimization_profile(trt_profile)
    cache = config.create_timing_cache(cache_bytes)
    config.set_timing_cache(cache, False)
    return config


def build_engine(
    path: str | os.PathLike[str], options: EngineOptions, progress: Progress | None = None
) -> EngineResult:
    """Build a TensorRT engine of the bundle at ``path`` and add it to the bundle atomically."""
    trt = require("tensorrt", "edge-engine (building TensorRT engines)")
    progress = progress or Progress(4, quiet=True)
    bundle = load_bundle(path)
    longest = int(options.max_seq_len or bundle.max_sequence_length)
    if longest > bundle.max_sequence_length:
        raise ExportError(
            f"--max-seq-len {longest} exceeds the bundle's {bundle.max_sequence_length}"
        )
    int8 = resolve_int8(options, bundle.precision)
    profiles = engine_profiles(bundle.graph["inputs"], longest)
    plan = plan_workspace(bundle, options, longest)
    workspace = (
        plan.workspace_bytes if plan else (options.workspace_mb or DEFAULT_WORKSPACE_MB) * MiB
    )
    progress.stage("check", f"TensorRT {trt.__version__}, workspace {workspace // MiB} MB")
    model = onnx.load(str(bundle.onnx_path), load_external_data=False)
    report = check_model(
        model,
        trt.__version__,
        profiles,
        longest,
        str(bundle.path),
        bundle.onnx_path.parent,
        rewrite=True,
    )
    if not report.ok:
        raise ExportError(report.format())
    model, _ = rewrite_for_tensorrt(model)
    gpu = gpu_identity()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    progress.stage("parse", str(bundle.onnx_path))
    network, _parser = _trt_parse(trt, logger, builder, model.SerializeToString(), bundle.onnx_path)
    cache_path = options.timing_cache
    cache_bytes = cache_path.read_bytes() if cache_path and cache_path.is_file() else b""
    config = _trt_config(
        trt, builder, options.fp16, int8, workspace, profiles, options, cache_bytes
    )
    monitor = None
    if hasattr(trt, "IProgressMonitor"):  # TensorRT 10
        monitor = _trt_progress_monitor(trt, progress)
        config.progress_monitor = monitor
    else:
        progress.stage("build", "TensorRT 8.6 reports no progress; minutes on an Orin")
    started = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - started
    if serialized is None:
        raise ExportError(
            "TensorRT could not build the engine (see its messages above); if it ran "
            "out of memory, lower --workspace-mb or --max-seq-len"
        )
    if cache_path is not None:
        _write_atomic(cache_path, bytes(config.get_timing_cache().serialize()))
    name = engine_file_name(bundle.precision, options.fp16, int8)
    record = engine_record(
        name,
        trt.__version__,
        gpu,
        options.fp16,
        int8,
        profiles,
        workspace,
        options,
        longest,
        seconds,
        bool(cache_bytes),
    )
    progress.stage("write", f"{name} into {bundle.path}")
    with tempfile.TemporaryDirectory(dir=bundle.path.parent) as work:
        engine_path = Path(work) / name
        engine_path.write_bytes(bytes(serialized))
        updated = update_bundle(
            bundle.path, lambda m: add_engine_record(m, record), {name: engine_path}
        )
    del monitor
    return EngineResult(updated, record)


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
