"""A per-machine cache of the graph onnxruntime optimizes at load, with its weights in a file.

onnxruntime fuses the bundle's int8 ``DequantizeLinear -> MatMul`` pairs into ``MatMulNBits`` at
every load, keeping the original weights, the fused copies and the parsed model in memory at once:
a 200 M int8 bundle took ~450 MB over the interpreter. Saved once with external initializers
and loaded from there, the fused weights are memory-mapped and the process holds ~245 MB (the
fused weights plus ~20 MB), at the same speed (measured in ``benchmarks/bench_runtime.py``).

The saved graph can hold hardware-specific rewrites, so the cache key covers the model file's
SHA-256, the onnxruntime version, the session config, the machine and its CPU flags. A cache
that cannot be written is skipped: the runtime then loads the bundle's graph as it is (a full
disk says so in one :class:`RuntimeWarning`; a read-only or missing cache silently). The
cached graph is loaded with graph optimizations off (they are already applied), as onnxruntime
advises for offline-optimized models; tensors under 64 KiB stay inside the graph file. Entries
are listed, leased while in use and evicted by :mod:`edge_sdk.runtime.disk_cache`.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import platform
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

from edge_sdk.runtime.disk_cache import EntryLease, default_cache_dir, enforce_cap, use_entry

__all__ = ["default_cache_dir", "optimized_model"]

_GRAPH = "model.onnx"
_DATA = "model.data"
_FULL = (errno.ENOSPC, errno.EDQUOT)


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="ignore").splitlines():
            if line.startswith(("flags", "Features")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _key(model_sha256: str, ort_version: str, session_config: dict[str, str]) -> str:
    text = json.dumps(
        [
            model_sha256,
            ort_version,
            sorted(session_config.items()),
            platform.machine(),
            _cpu_flags(),
        ]
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def optimized_model(
    ort: Any,
    source: Path,
    model_sha256: str,
    options: Any,
    session_config: dict[str, str],
    cache_dir: Path,
) -> tuple[Path, EntryLease | None]:
    """The optimized graph for ``source`` (made now if missing) and a lease that keeps it while
    the session lives; ``(source, None)`` when the cache cannot be used."""
    key = _key(model_sha256, ort.__version__, session_config)
    folder = cache_dir / "ort" / f"{source.parent.name}-{key}"
    lease = use_entry(folder)
    if lease is not None and (folder / _GRAPH).is_file() and (folder / _DATA).is_file():
        return folder / _GRAPH, lease  # checked under the lease: not being evicted
    if lease is not None:
        lease.release()
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    except OSError as exc:  # read-only or missing: skipped quietly; full: said
        if exc.errno in _FULL:
            _warn_uncached(cache_dir, exc)
        return source, None
    lease = None
    try:
        lease = EntryLease(work)  # follows the folder through the rename below
        options.optimized_model_filepath = str(work / _GRAPH)
        options.add_session_config_entry(
            "session.optimized_model_external_initializers_file_name", _DATA
        )
        options.add_session_config_entry(
            "session.optimized_model_external_initializers_min_size_in_bytes", "65536"
        )
        try:
            ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's own Fail: saving into work/ failed (disk full)
            if str(work) not in str(exc):
                raise  # not the cache's fault: the caller's own load reports it
            lease.release()
            _warn_uncached(cache_dir, exc)
            return source, None
        if not (work / _GRAPH).is_file():
            lease.release()
            return source, None
        if not (work / _DATA).is_file():  # a graph without large weights: nothing to map
            (work / _DATA).touch()
        os.rename(work, folder)
    except OSError as exc:  # another process made it first, or the disk is full / read-only
        if lease is not None:
            lease.release()
        lease = use_entry(folder)
        if lease is not None and (folder / _GRAPH).is_file():
            return folder / _GRAPH, lease
        if lease is not None:
            lease.release()
        if exc.errno in _FULL:
            _warn_uncached(cache_dir, exc)
        return source, None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    enforce_cap(cache_dir, keep=folder)
    return folder / _GRAPH, lease


def _warn_uncached(cache_dir: Path, exc: BaseException) -> None:
    reason = exc.strerror if isinstance(exc, OSError) else "onnxruntime could not save it"
    warnings.warn(
        f"cannot write the optimized-graph cache in {cache_dir} ({reason}; is the disk full?): "
        "running without it, which takes more memory at each load; free space there or point "
        "EDGE_SDK_CACHE_DIR at another disk",
        RuntimeWarning,
        stacklevel=4,
    )
