"""Optimization profiles and the builder's memory cap, computed from the bundle and the module.

Profiles (min / opt / max per input; the graph's symbolic dimensions decide each range, from
:func:`edge_sdk.shapes.dim_ranges`):

==================  ==============  ====================  =============================
profile             ``sequence``    ``past_sequence``     ``total_sequence`` (mask)
==================  ==============  ====================  =============================
0 ``prefill``       1 .. chunk      0 .. max - 1          1 .. max
1 ``decode``        1               0 .. max - 1          1 .. max
==================  ==============  ====================  =============================

``chunk`` is ``min(max, PREFILL_CHUNK)``: the runtime feeds long prompts in chunks of that size on
top of the cache, so a prefill never needs more. ``batch`` is 1.

Workspace (TensorRT's ``MemoryPoolType.WORKSPACE``): on a Jetson the GPU shares the module's
memory with the OS, so the builder's scratch must fit beside what the build itself holds: the
parsed ONNX weights, the builder's copy and the serialized engine (``BUILD_WEIGHT_COPIES`` x the
stored weights) and one prefill's activations. The cap is what the planner's usable memory leaves
after those, at most ``MAX_WORKSPACE``; less than ``MIN_WORKSPACE`` is an error that says what to
change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from edge_sdk.config import ModelConfig
from edge_sdk.errors import ConfigError
from edge_sdk.planner import Device, estimate_memory, weight_format
from edge_sdk.shapes import PREFILL_CHUNK, dim_ranges

__all__ = [
    "BUILD_WEIGHT_COPIES",
    "MAX_WORKSPACE",
    "MIN_WORKSPACE",
    "PREFILL_CHUNK",
    "Profile",
    "WorkspacePlan",
    "dim_ranges",
    "engine_profiles",
    "workspace_plan",
]

MiB = 2**20
MIN_WORKSPACE = 256 * MiB
MAX_WORKSPACE = 4096 * MiB
BUILD_WEIGHT_COPIES = 3

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Profile:
    """One optimization profile: ``shapes[name] = (min, opt, max)`` for every dynamic input."""

    name: str
    shapes: dict[str, tuple[Shape, Shape, Shape]]

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the manifest."""
        return {
            "name": self.name,
            "shapes": {
                k: {"min": list(v[0]), "opt": list(v[1]), "max": list(v[2])}
                for k, v in self.shapes.items()
            },
        }


def _profile(
    name: str, inputs: Sequence[Mapping[str, Any]], ranges: Mapping[str, tuple[int, int, int]]
) -> Profile:
    shapes: dict[str, tuple[Shape, Shape, Shape]] = {}
    for spec in inputs:
        dims: list[tuple[int, int, int]] = []
        for dim in spec["shape"]:
            if isinstance(dim, int):
                dims.append((dim, dim, dim))
            elif dim in ranges:
                dims.append(ranges[dim])
            else:
                raise ConfigError(
                    f"input {spec['name']} has the dimension {dim!r}, which no profile covers; "
                    f"the standard graph uses {', '.join(ranges)}"
                )
        if any(isinstance(d, str) for d in spec["shape"]):
            shapes[spec["name"]] = tuple(tuple(d[i] for d in dims) for i in range(3))  # type: ignore[assignment]
    return Profile(name, shapes)


def engine_profiles(inputs: Sequence[Mapping[str, Any]], max_seq_len: int) -> list[Profile]:
    """The prefill and decode profiles for graph inputs described as in the manifest.

    ``inputs``: ``[{"name", "shape": [int | symbol, ...]}, ...]`` (``manifest["graph"]["inputs"]``).
    """
    return [
        _profile("prefill", inputs, dim_ranges(max_seq_len, decode=False)),
        _profile("decode", inputs, dim_ranges(max_seq_len, decode=True)),
    ]


@dataclass(frozen=True)
class WorkspacePlan:
    """The builder's memory-pool cap for one module, with the numbers it came from."""

    device: str
    workspace_bytes: int
    usable_bytes: int
    weights_bytes: int
    activations_bytes: int
    requested_bytes: int | None

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the manifest and ``--json``."""
        return {
            "device": self.device,
            "workspace_mb": self.workspace_bytes // MiB,
            "usable_mb": self.usable_bytes // MiB,
            "weights_mb": self.weights_bytes // MiB,
            "activations_mb": self.activations_bytes // MiB,
            "requested_mb": None if self.requested_bytes is None else self.requested_bytes // MiB,
        }


def workspace_plan(
    config: ModelConfig,
    device: Device,
    precision: str,
    max_seq_len: int,
    requested_mb: int | None = None,
) -> WorkspacePlan:
    """Cap TensorRT's workspace so that building fits ``device`` (see the module docstring)."""
    fmt = weight_format(precision)
    prompt = min(max_seq_len, PREFILL_CHUNK)
    memory = estimate_memory(config, device, fmt, context=max_seq_len, prompt=prompt)
    weights = memory.weights.stored
    available = memory.usable - BUILD_WEIGHT_COPIES * weights - memory.workspace
    requested = None if requested_mb is None else int(requested_mb) * MiB
    if requested is not None and requested <= 0:
        raise ConfigError(f"--workspace-mb must be positive, got {requested_mb}")
    cap = min(available, MAX_WORKSPACE)
    if requested is not None:
        if requested > available:
            raise ConfigError(
                f"--workspace-mb {requested_mb} does not fit {device.title}: the build needs "
                f"{BUILD_WEIGHT_COPIES * weights // MiB} MB for weights and "
                f"{memory.workspace // MiB} MB for activations, leaving "
                f"{max(available, 0) // MiB} MB; "
                "ask for less"
            )
        cap = requested
    if cap < MIN_WORKSPACE:
        raise ConfigError(
            f"building this engine does not fit {device.title}: {memory.usable // MiB} MB usable, "
            f"{BUILD_WEIGHT_COPIES * weights // MiB} MB for weights during the build, "
            f"{memory.workspace // MiB} MB for activations leave {max(available, 0) // MiB} MB of "
            f"workspace (at least {MIN_WORKSPACE // MiB} MB needed). Lower --max-seq-len, build "
            "an int8 bundle, or stop other programs (and add swap) while building"
        )
    return WorkspacePlan(device.name, int(cap), memory.usable, weights, memory.workspace, requested)
