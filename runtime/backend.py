"""The one small interface every runtime backend implements, and the registry that picks one.

A backend owns an inference session and the KV cache of one running sequence. The generator
drives it with two calls and never sees tensors other than the last position's logits::

    with backend:                               # activate() ... deactivate()
        backend.allocate(max_length)            # the KV cache, once per generation
        logits = backend.forward(prompt_ids)    # [vocab] float32, the cache grows by len(ids)
        logits = backend.forward([next_id])     # one decode step

``forward_all`` returns every position's logits instead (prompt logprobs, and speculative
decoding's check of drafted tokens, which then cuts the rejected ones with ``truncate``).

Adding a backend is one new file with a :class:`Backend` subclass and one row in
:data:`BACKEND_TABLE` (its name, class and install hint); :func:`create_backend` is the one place
a backend is chosen (by name, or ``"auto"``).
"""

from __future__ import annotations

import importlib
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
    "BACKEND_TABLE",
    "Backend",
    "BackendEntry",
    "BackendOptions",
    "KVCacheBackend",
    "available_backends",
    "create_backend",
    "install_hint",
]


@dataclass(frozen=True)
class BackendOptions:
    """Settings a backend takes from :func:`edge_sdk.runtime.load`.

    ``threads``: intra-op threads on the CPU (None: onnxruntime's default, one per physical
    core). ``session_config``: extra onnxruntime session config entries, applied over the ones
    the bundle's manifest records. ``cache_dir``: where TensorRT engines and optimized CPU
    graphs are kept (None: ``$EDGE_SDK_CACHE_DIR`` or ``~/.cache/edge-sdk``).
    ``optimized_cache``: load the CPU graph from that cache (see
    :mod:`edge_sdk.runtime.ort_cache`). ``device_id``: the CUDA device. ``fused_graph``: run the
    bundle's fused onnxruntime graph when it has one for the provider (fused attention, batched
    slots: ``model.ort.onnx`` on the CPU, ``model.cuda.onnx`` on the CUDA EP); False: always the
    standard ``model.onnx``.
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

    def truncate(self, length: int) -> bool:
        """Keep only the first ``length`` positions of the cache (the prompt cache reuses a
        prefix); False when this backend cannot do that exactly (the caller then resets).

        An optional hook: the default keeps the cache only when nothing is cut."""
        return length == self.cache_length

    def checkpoint(self) -> None:
        """Remember the cache as it is now, so that :meth:`truncate` can come back to this
        length exactly even where a length alone cannot say it (a hybrid model's recurrent
        states: copied). Speculative decoding takes one before it checks drafts.

        An optional hook: the default does nothing (a cut of K/V needs no checkpoint)."""
        return None

    @abstractmethod
    def forward(self, token_ids: np.ndarray) -> np.ndarray:
        """Run ``token_ids`` [n] int64 on top of the cache; return the last position's logits.

        The cache grows by n. Returns a float32 [vocab] array the caller may keep until the
        next call.
        """

    def forward_all(self, token_ids: np.ndarray) -> np.ndarray:
        """As :meth:`forward`, but every position's logits: float32 [n, vocab], row j the
        distribution after ``token_ids[j]`` (for prompt logprobs).

        This default runs the tokens one at a time (exact on any backend, n model calls);
        a backend whose graph returns every position overrides it."""
        ids = np.asarray(token_ids, dtype=np.int64).reshape(-1)
        rows = [np.array(self.forward(ids[j : j + 1]), copy=True) for j in range(ids.size)]
        return np.stack(rows) if rows else np.zeros((0, self.bundle.config.vocab_size), np.float32)

    def speculation_problem(self) -> str | None:
        """Why speculative decoding cannot run here (None: it can): it needs
        :meth:`forward_all` in one model call and an exact :meth:`truncate` of rejected
        positions (back to a :meth:`checkpoint` where states must be restored). The message
        names the fix. The default: it cannot."""
        return (
            f"the {self.name} backend cannot check drafted tokens in one call and cut them from "
            "its cache: load the bundle on the ort-cpu backend, or generate without speculative"
        )

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

    def truncate(self, length: int) -> bool:
        if self.cache is None:
            return length == 0
        return self.cache.truncate(length)

    def checkpoint(self) -> None:
        if self.cache is not None:
            self.cache.checkpoint()

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


_GPU_HINT = (
    f"install onnxruntime-gpu ({pip_install('gpu')}; on Jetson, the "
    "onnxruntime-gpu wheel for your JetPack from the Jetson AI Lab index) and make sure "
    "CUDA and cuDNN from JetPack are on the library path"
)


@dataclass(frozen=True)
class BackendEntry:
    """One row of :data:`BACKEND_TABLE`: where a backend's class lives and what it needs."""

    #: The module that defines the class, imported only when the backend is asked for.
    module: str
    class_name: str
    #: What to install when it is unusable here (the error the backend raises says it).
    install: str

    def backend_class(self) -> type[Backend]:
        """The :class:`Backend` subclass (imports its module)."""
        cls: type[Backend] = getattr(importlib.import_module(self.module), self.class_name)
        return cls


#: Every backend by the name :func:`create_backend` takes; ``"auto"`` tries :data:`AUTO_ORDER`.
BACKEND_TABLE: dict[str, BackendEntry] = {
    "ort-tensorrt": BackendEntry(
        "edge_sdk.runtime.ort_backend",
        "OrtTensorrtBackend",
        _GPU_HINT + "; the TensorRT EP also needs TensorRT's libraries (part of JetPack)",
    ),
    "ort-cuda": BackendEntry("edge_sdk.runtime.ort_backend", "OrtCudaBackend", _GPU_HINT),
    "ort-cpu": BackendEntry(
        "edge_sdk.runtime.ort_backend",
        "OrtCpuBackend",
        f"install onnxruntime: {pip_install('cpu')}",
    ),
    "tensorrt": BackendEntry(
        "edge_sdk.runtime.trt_backend",
        "TensorrtBackend",
        "JetPack's TensorRT Python bindings (sudo apt install python3-libnvinfer) and pycuda, "
        f"or {pip_install('tensorrt')} on a desktop GPU",
    ),
}
#: Backend names, in the order ``backend="auto"`` tries them.
AUTO_ORDER: tuple[str, ...] = ("ort-tensorrt", "ort-cuda", "ort-cpu")
#: Every backend name :func:`create_backend` accepts (besides ``"auto"``).
BACKENDS: tuple[str, ...] = tuple(BACKEND_TABLE)


def install_hint(name: str) -> str:
    """What to install for the backend called ``name``."""
    return BACKEND_TABLE[name].install


def available_backends() -> list[str]:
    """Names of the backends usable on this machine, in ``auto`` order."""
    return [name for name in BACKENDS if BACKEND_TABLE[name].backend_class().is_available()]


def create_backend(
    name: str, bundle: Bundle, options: BackendOptions, *, activate: bool = False
) -> Backend:
    """The backend called ``name``, or for ``"auto"`` the first usable one in :data:`AUTO_ORDER`.

    The one place a backend is chosen. ``activate``: also start it; ``"auto"`` then moves on
    past a backend that is listed as usable but fails to start (e.g. onnxruntime-gpu without
    CUDA's libraries). Raises :class:`BackendUnavailableError` naming what to install.
    """
    if name != "auto":
        entry = BACKEND_TABLE.get(name)
        if entry is None:
            raise BackendUnavailableError(
                f"unknown backend {name!r}; choose one of: auto, {', '.join(BACKENDS)}"
            )
        cls = entry.backend_class()
        cls.check_available()
        backend = cls(bundle, options)
        if activate:
            backend.activate()
        return backend
    failures = []
    for candidate in AUTO_ORDER:
        cls = BACKEND_TABLE[candidate].backend_class()
        if not cls.is_available():
            continue
        backend = cls(bundle, options)
        if not activate:
            return backend
        try:
            backend.activate()
        except BackendUnavailableError as exc:  # listed by onnxruntime, but cannot start here
            failures.append(str(exc))
            continue
        return backend
    raise BackendUnavailableError(
        "no runtime backend starts here: " + "; ".join(failures)
        if failures
        else "no runtime backend is usable here: install onnxruntime "
        f"({pip_install('cpu')}, or {pip_install('gpu')} on a CUDA machine)"
    )
