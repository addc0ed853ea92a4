"""Which of a bundle's TensorRT engines may run here: pure decisions, no TensorRT import.

An engine runs only on the TensorRT version and the GPU (name and compute capability) it was built
for; anything else is refused with an error that says to run ``edge-engine`` again.
"""

from __future__ import annotations

from typing import Any

from edge_sdk.errors import BackendUnavailableError, BundleError

__all__ = ["engine_mismatch", "same_trt_version", "select_engine"]


def same_trt_version(built: str, here: str) -> bool:
    """Engines are tied to TensorRT's major.minor.patch (the build number may differ)."""
    return built.split(".")[:3] == here.split(".")[:3]


def engine_mismatch(
    record: dict[str, Any], trt_version: str, gpu_name: str, compute_capability: str
) -> str | None:
    """Why ``record`` cannot run with this TensorRT and GPU, or None when it can."""
    reasons = []
    if not same_trt_version(str(record.get("tensorrt", "")), trt_version):
        reasons.append(f"TensorRT {record.get('tensorrt')} (this machine has {trt_version})")
    if str(record.get("compute_capability")) != compute_capability:
        reasons.append(
            f"compute capability {record.get('compute_capability')} "
            f"(this GPU is {compute_capability})"
        )
    elif str(record.get("gpu")) != gpu_name:
        reasons.append(f"the GPU {record.get('gpu')!r} (this one is {gpu_name!r})")
    return None if not reasons else " and ".join(reasons)


def select_engine(
    manifest: dict[str, Any],
    trt_version: str,
    gpu_name: str,
    compute_capability: str,
    bundle: str = "the bundle",
) -> dict[str, Any]:
    """The newest engine of ``manifest`` that runs here; an error naming the fix otherwise."""
    engines = list(manifest.get("engines") or [])
    if not engines:
        raise BackendUnavailableError(
            f"{bundle} has no TensorRT engine; build one on this device: edge-engine {bundle}"
        )
    refused = []
    for record in reversed(engines):
        if "file" not in record:
            raise BundleError(
                f"{bundle}: an engine entry lacks its file name; run edge-engine again"
            )
        why = engine_mismatch(record, trt_version, gpu_name, compute_capability)
        if why is None:
            return dict(record)
        refused.append(f"{record['file']} was built for {why}")
    raise BackendUnavailableError(
        f"{bundle}: {'; '.join(refused)}. Engines only run where they were built: rebuild it "
        f"here with: edge-engine {bundle}"
    )
