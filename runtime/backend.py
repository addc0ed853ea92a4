"""The one small interface every runtime backend implements, and the registry that picks one.

A backend owns an inference session and the KV cache of one running sequence. The generator
drives it with two calls and never sees tensors other than the last position's logits::

    with backend:                               # activate() ... deactivate()
        backend.allocate(max_length)            # the KV cache, once per generation
        logits = backend.forward(prompt_ids)    # [vocab] float32, the cache grows by len(ids)
        logits = backend.forward([next_id])     # one decode step

Adding a backend is one new file with a :class:`Backend` subclass and one line in
:data:`BACKENDS`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np

from edge_sdk._optional import pip_install
from edge_sdk.bundle import Bundle
from edge_sdk.errors import BackendUnavailableError, GenerationError
from edge_sdk.runtime.kv_cache import KVCache

if TYPE_CHECKING:
    from edge_sdk.runtime.slots import SlotModel

__all__ = [
    "AUTO_ORDER",
    "BACKENDS",
    "Backend",
    "BackendOptions",
    "KVCacheBackend",
    "available_backends",
    "create_backend",
]


@dataclass(frozen=True)
class BackendOptions:
    """Settings a backend takes from :func:`edge_sdk.runtime.load`.

    ``threads``: intra-op threads on the CPU (None: onnxruntime's default, one per physical
    core). ``session_config``: extra onnxruntime session config entries, applied over the ones
    the bundle's manifest records. ``cache_dir``: where TensorRT engines and optimized CPU
    graphs are kept (None: ``$EDGE_SDK_CACHE_DIR`` or ``~/.cache/edge-sdk``).
    ``optimized_cache``: load the CPU graph from that cache (see
    :mod:`edge_sdk.runtime.ort_cache`). ``device_id``: the CUDA device. ``fused_graph``: on the
    CPU, run the bundle's onnxruntime graph (fused attention; ``model.ort.onnx``) when it has one
    (False: always the standard ``model.onnx``).
    """

    threads: int | None = None
    session_config: dict[str, str] = field(default_factory=dict)
    cache_dir: Path | None = None
    optimized_cache: bool = True
    device_id: int = 0
    fused_graph: bool = True


class Backend(ABC):
    """A model session plus the KV cache of one sequence (see the module docstring)."""

    #: The name :func:`edge_sdk.runtime.load` takes (``backend="ort-cpu"``).
    name: str = ""

    def __init__(self, bundle: Bundle, options: BackendOptions) -> None:
        self.bundle = bundle
        self.options = options

    @classmethod
    def check_available(cls) -> None:
        """Raise :class:`BackendUnavailableError` naming what to install when unusable here.

        An optional hook: the default accepts every machine."""
        return None

    @classmethod
    def is_available(cls) -> bool:
        """Whether :meth:`check_available` passes."""
        try:
            cls.check_available()
        except BackendUnavailableError:
            return False
        return True

    # -- lifecycle ------------------------------------------------------------------------------

    @abstractmethod
    def activate(self) -> None:
        """Create the session (load weights, build or load engines)."""

    @abstractmethod
    def deactivate(self) -> None:
        """Release the session and the cache."""

    def __enter__(self) -> Backend:
        self.activate()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.deactivate()

    # -- inference ------------------------------------------------------------------------------

    @abstractmethod
    def allocate(self, max_length: int) -> None:
        """Make an empty KV cache that holds ``max_length`` positions (reuses one that fits)."""

    @abstractmethod
    def reset(self) -> None:
        """Empty the cache without freeing it."""

    @abstractmethod
    def forward(self, token_ids: np.ndarray) -> np.ndarray:
        """Run ``token_ids`` [n] int64 on top of the cache; return the last position's logits.

        The cache grows by n. Returns a float32 [vocab] array the caller may keep until the
        next call.
        """

    @property
    @abstractmethod
    def cache_length(self) -> int:
        """Positions now in the cache."""

    @property
    @abstractmethod
    def cache_bytes(self) -> int:
        """Bytes allocated for the KV cache (0 before :meth:`allocate`)."""

    @property
    def device(self) -> str:
        """What runs the model, in words (e.g. ``"onnxruntime CPUExecutionProvider"``)."""
        return self.name

    def slot_model(self, slots: int, capacity: int) -> SlotModel | None:
        """KV-cache rows that decode together in one call over this backend's session (see
        :mod:`edge_sdk.runtime.slots`), or None when this backend cannot batch rows of
        different lengths."""
        return None


class KVCacheBackend(Backend):
    """A backend whose cache is a :class:`~edge_sdk.runtime.kv_cache.KVCache` (``self.cache``)."""

    def __init__(self, bundle: Bundle, options: BackendOptions) -> None:
        super().__init__(bundle, options)
        self.cache: KVCache | None = None

    def reset(self) -> None:
        if self.cache is not None:
            self.cache.reset()

    @property
    def cache_length(self) -> int:
        return 0 if self.cache is None else self.cache.length

    @property
    def cache_bytes(self) -> int:
        return 0 if self.cache is None else self.cache.nbytes

    def checked_ids(self, token_ids: np.ndarray) -> tuple[KVCache, np.ndarray]:
        """The cache and ``token_ids`` as int64 [n], or a clear error when they do not fit it."""
        cache = self.cache
        if cache is None:
            raise GenerationError("allocate the KV cache before running the model")
        ids = np.asarray(token_ids, dtype=np.int64).reshape(-1)
        if cache.length + ids.size > cache.capacity:
            raise GenerationError(
                f"{ids.size} more tokens do not fit the context: {cache.length} "
                f"of {cache.capacity} positions are used"
            )
        return cache, ids


def _ort_backends() -> dict[str, type[Backend]]:
    from edge_sdk.runtime.ort_backend import OrtCpuBackend, OrtCudaBackend, OrtTensorrtBackend

    return {b.name: b for b in (OrtTensorrtBackend, OrtCudaBackend, OrtCpuBackend)}


def _native_tensorrt() -> dict[str, type[Backend]]:
    from edge_sdk.runtime.trt_backend import TensorrtBackend

    return {TensorrtBackend.name: TensorrtBackend}


#: Backend names, in the order ``backend="auto"`` tries them.
AUTO_ORDER: tuple[str, ...] = ("ort-tensorrt", "ort-cuda", "ort-cpu")
#: Every backend name :func:`create_backend` accepts (besides ``"auto"``).
BACKENDS: tuple[str, ...] = (*AUTO_ORDER, "tensorrt")


def _registry() -> dict[str, type[Backend]]:
    return {**_ort_backends(), **_native_tensorrt()}


def available_backends() -> list[str]:
    """Names of the backends usable on this machine, in ``auto`` order."""
    registry = _registry()
    return [name for name in BACKENDS if registry[name].is_available()]


def create_backend(name: str, bundle: Bundle, options: BackendOptions) -> Backend:
    """The backend called ``name`` (or the first available one for ``"auto"``), not yet active."""
    registry = _registry()
    if name == "auto":
        for candidate in AUTO_ORDER:
            if registry[candidate].is_available():
                return registry[candidate](bundle, options)
        raise BackendUnavailableError(
            "no runtime backend is usable here: install onnxruntime "
            f"({pip_install('cpu')}, or {pip_install('gpu')} on a CUDA machine)"
        )
    if name not in registry:
        raise BackendUnavailableError(
            f"unknown backend {name!r}; choose one of: auto, {', '.join(BACKENDS)}"
        )
    cls = registry[name]
    cls.check_available()
    return cls(bundle, options)
