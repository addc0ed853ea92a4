"""How much an edge-serve pod asks for: the planner's memory model, with edge-serve's shapes.

edge-serve keeps ``--slots`` KV caches of ``--max-context`` positions each and prefills one
request at a time in chunks of at most ``PREFILL_CHUNK`` tokens, so the pod's memory is the
planner's :func:`~edge_sdk.planner.estimate_memory` for ``batch = slots`` and ``context =
max_context`` (weights as resident, the runtime's KV buffers, runtime overhead) with the prefill
workspace of one chunk of one request. The OS and CUDA reservation the planner subtracts from the
module's memory stays outside the pod: it is the kubelet's ``system-reserved`` on the node.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_sdk.bundle import MANIFEST_NAME, load_bundle
from edge_sdk.config import ModelConfig
from edge_sdk.errors import DeployError
from edge_sdk.planner.catalog import Device, get_device
from edge_sdk.planner.inputs import ModelSource, resolve_model
from edge_sdk.planner.memory import MemoryEstimate, estimate_memory, prefill_workspace_bytes
from edge_sdk.planner.plan import DEFAULT_CONTEXT
from edge_sdk.planner.precision import WeightFormat, weight_format
from edge_sdk.shapes import PREFILL_CHUNK

__all__ = [
    "PREFILL_CHUNK",
    "DeployedModel",
    "PodSizing",
    "describe_model",
    "mebibytes",
    "serve_memory",
    "size_pod",
]

MIB = 2**20
DEFAULT_MEMORY_MARGIN = 0.25
_CACHE_SPARE = 512 * MIB


@dataclass(frozen=True)
class DeployedModel:
    """The model a deployment serves: its configuration, and the bundle's identity when known."""

    source: ModelSource
    bundle_name: str
    max_sequence_length: int | None  # a bundle's; None for a preset or config.json
    manifest_sha256: str | None  # a bundle's manifest.json: changes with every re-export


@dataclass(frozen=True)
class PodSizing:
    """Memory of one edge-serve pod for ``model`` on ``device``, from the planner."""

    model: str
    device: str
    precision: str
    slots: int
    max_context: int
    memory_request: int  # bytes: the planner's total
    memory_limit: int  # bytes: the request plus the margin, at most the module less reserved
    cache_size: int  # bytes: the runtime cache's emptyDir (optimized graph / TensorRT engine)
    memory: MemoryEstimate

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary (``--json``)."""
        memory = self.memory
        return {
            "model": self.model,
            "device": self.device,
            "precision": self.precision,
            "slots": self.slots,
            "max_context": self.max_context,
            "memory_request": mebibytes(self.memory_request),
            "memory_limit": mebibytes(self.memory_limit),
            "cache_size": mebibytes(self.cache_size),
            "memory_request_bytes": self.memory_request,
            "memory_limit_bytes": self.memory_limit,
            "planner": {
                "weights": memory.weights.total,
                "kv_cache": memory.kv_allocated,
                "workspace": memory.workspace,
                "overhead": memory.overhead,
                "total": memory.total,
                "usable": memory.usable,
            },
        }

    def breakdown(self) -> str:
        """One line: what the request is made of, in GB (10^9 bytes, as edge-plan prints)."""
        m = self.memory
        return (
            f"weights {m.weights.total / 1e9:.2f} + KV cache {m.kv_allocated / 1e9:.2f} + "
            f"workspace {m.workspace / 1e9:.2f} + overhead {m.overhead / 1e9:.2f} = "
            f"{m.total / 1e9:.2f} GB of {m.usable / 1e9:.2f} usable"
        )


def mebibytes(size: int) -> str:
    """A Kubernetes quantity in Mi, rounded up: ``536870912`` -> ``"512Mi"``."""
    return f"{math.ceil(size / MIB)}Mi"


def describe_model(model: str, bundle_name: str | None = None) -> DeployedModel:
    """``model`` as edge-plan reads it (a bundle, config.json, model.pt, GGUF or preset)."""
    source = resolve_model(model)
    length = digest = None
    if source.kind == "bundle":
        root = Path(model)
        root = root.parent if root.name == MANIFEST_NAME else root
        length = load_bundle(root, verify=False).max_sequence_length
        digest = hashlib.sha256((root / MANIFEST_NAME).read_bytes()).hexdigest()
    return DeployedModel(source, bundle_name or source.name, length, digest)


def _jetson(name: str) -> Device:
    device = get_device(name)
    if not device.jetson:
        raise DeployError(
            f"{name} is not a Jetson module: edge-deploy k8s renders for Jetson "
            "nodes; on an x86 machine run the x86 image (deploy/container)"
        )
    return device


def serve_memory(
    config: ModelConfig, device: Device, fmt: WeightFormat, slots: int, context: int
) -> MemoryEstimate:
    """The planner's estimate for edge-serve: ``slots`` caches of ``context``, one prefill chunk."""
    chunk = min(PREFILL_CHUNK, context)
    estimate = estimate_memory(config, device, fmt, context, slots, chunk)
    workspace = prefill_workspace_bytes(config, chunk, 1, fmt.activation_dtype)
    total = estimate.total - estimate.workspace + workspace
    return dataclasses.replace(
        estimate, workspace=workspace, total=total, fits=total <= estimate.usable
    )


def _largest(fits: Any, upper: int) -> int:
    low, high = 0, upper
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if fits(mid) else (low, mid - 1)
    return low


def size_pod(
    model: DeployedModel,
    device_name: str,
    *,
    slots: int,
    max_context: int | None = None,
    precision: str | None = None,
    memory_margin: float = DEFAULT_MEMORY_MARGIN,
) -> PodSizing:
    """Memory of edge-serve with ``slots`` x ``max_context`` on the module; refuse a misfit."""
    source = model.source
    if slots < 1:
        raise DeployError(f"--slots must be at least 1, got {slots}")
    if not 0 <= memory_margin <= 4:
        raise DeployError(f"--memory-margin must be in [0, 4], got {memory_margin}")
    if precision and source.precision and precision != source.precision:
        raise DeployError(
            f"{source.name} is a {source.precision} bundle; drop --precision "
            f"{precision} (a bundle serves its own precision)"
        )
    longest = model.max_sequence_length or source.config.max_position_embeddings
    context = max_context or model.max_sequence_length or min(DEFAULT_CONTEXT, longest)
    if context < 1 or context > longest:
        raise DeployError(
            f"--max-context must be in 1..{longest} (the "
            f"{'bundle' if model.max_sequence_length else 'model'}'s maximum), "
            f"got {context}"
        )
    device = _jetson(device_name)
    chosen = precision or source.precision or "int8"
    fmt = weight_format(chosen, source.group_size if chosen == source.precision else None)
    memory = serve_memory(source.config, device, fmt, slots, context)
    if not memory.fits:
        most_slots = _largest(
            lambda n: serve_memory(source.config, device, fmt, n, context).fits, 4096
        )
        most_context = _largest(
            lambda n: serve_memory(source.config, device, fmt, slots, n).fits, longest
        )
        raise DeployError(
            f"{source.name} ({fmt.label}) with {slots} slots x {context} positions needs "
            f"{memory.total / 1e9:.2f} GB; {device.name} has {memory.usable / 1e9:.2f} GB usable. "
            f"At {context} positions at most {most_slots} slots fit; with {slots} slots at most "
            f"{most_context} positions (--slots, --max-context)"
        )
    cache = 2 * memory.weights.stored + _CACHE_SPARE
    board = memory.device_memory - memory.reserved  # a limit past it could never be honoured
    limit = max(memory.total, min(math.ceil(memory.total * (1 + memory_margin)), board))
    return PodSizing(
        source.name, device.name, fmt.label, slots, context, memory.total, limit, cache, memory
    )
