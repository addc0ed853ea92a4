"""onnxruntime backends: TensorRT EP, CUDA EP and CPU, in that order of preference.

Each requests its execution provider followed by the ones after it in the order
TensorRT EP -> CUDA EP -> CPU, so a node one provider cannot run falls back to the next.
The KV cache lives where the provider computes (device ``OrtValue`` s for CUDA and TensorRT,
host numpy arrays for the CPU: :mod:`edge_sdk.runtime.ort_buffers`) and is bound with I/O binding
(see :mod:`edge_sdk.runtime.kv_cache`); only the token ids go in and the last position's logits
come out each step. A bundle's fused graph (GroupQueryAttention over one in-place cache buffer
per tensor) runs instead of ``model.onnx`` unless ``fused_graph=False``: ``model.ort.onnx`` on
the CPU, ``model.cuda.onnx`` (fp16 activations and cache) on the CUDA EP; its buffers are bound
once per cache, and its rows batch (:meth:`OrtBackend.slot_model`). The TensorRT EP runs the
standard graph (TensorRT takes no contrib ops). The cache's element type is the session's.
Inputs and outputs are bound by the names the manifest records for the graph that runs
(``io_names``; the conventional names for bundles that predate them).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from edge_sdk._optional import require
from edge_sdk.bundle import INT8_QDQ_PRECISIONS, Bundle
from edge_sdk.errors import BackendUnavailableError, BundleError, EdgeError, GenerationError
from edge_sdk.manifest import CudaGraph, FusedGraph, IoNames
from edge_sdk.onnx_io import LOGITS_TO_KEEP, cache_tensors
from edge_sdk.runtime.backend import BackendOptions, KVCacheBackend, install_hint
from edge_sdk.runtime.disk_cache import EntryLease, enforce_cap, use_entry
from edge_sdk.runtime.kv_cache import Clearer, Copier, KVCache
from edge_sdk.runtime.ort_buffers import Place, element_type
from edge_sdk.runtime.ort_cache import default_cache_dir, optimized_model
from edge_sdk.runtime.slots import SlotModel
from edge_sdk.shapes import PREFILL_CHUNK, ep_ranges

__all__ = [
    "PREFILL_CHUNK",
    "OrtBackend",
    "OrtCpuBackend",
    "OrtCudaBackend",
    "OrtTensorrtBackend",
]


_STANDARD_ROLES = ("attention_mask", "position_ids")
_FUSED_ROLES = ("seqlens_k", "total_sequence_length")


class OrtBackend(KVCacheBackend):
    """One onnxruntime session with I/O-bound KV cache buffers."""

    provider: ClassVar[str] = "CPUExecutionProvider"
    cache_device: ClassVar[str] = "cpu"
    #: The cache is OrtValues on ``cache_device`` (else host numpy arrays).
    ort_values: ClassVar[bool] = False

    def __init__(self, bundle: Bundle, options: BackendOptions) -> None:
        super().__init__(bundle, options)
        config = bundle.config
        self._layers = config.num_layers
        self._cache_shapes = [t.shape for t in cache_tensors(config)]
        self._vocab = config.vocab_size
        self.place = Place(self.cache_device, options.device_id, self.ort_values)
        self._cache_type: type[np.floating[Any]] = np.float32  # the session's, once it loads
        self._io = self._io_names(fused=False)
        self._past, self._present = self._io.past, self._io.present
        self.session: Any = None
        self._binding: Any = None
        self._lease: EntryLease | None = None  # the cache entry the session was loaded from
        # one-token decode inputs and output, bound by pointer, refilled in place
        self._ids1 = np.zeros((1, 1), dtype=np.int64)
        self._pos1 = np.zeros((1, 1), dtype=np.int64)
        self._logits1 = np.zeros((1, 1, self._vocab), dtype=np.float32)
        self._mask = np.ones((1, 0), dtype=np.int64)
        # the fused graph (GroupQueryAttention) reads positions from these instead
        self.fused = self._fused_graph_file() is not None
        self.fused_fallback: str | None = None  # why the fused graph did not load, if it did not
        self._seqlens_k = np.zeros(1, dtype=np.int32)
        self._total = np.zeros((), dtype=np.int32)
        self._fused_bound = False  # the cache, positions and logits are bound (fused graph)
        self._ids_bound: tuple[int, int] | None = None  # (pointer, length) input_ids is bound to
        # the fused graph's optional input: how many last positions get logits (1 but in
        # forward_all); None when the graph predates it
        self._keep: np.ndarray | None = None

    def fused_graph_record(self) -> FusedGraph | CudaGraph | None:
        """The manifest's record of the fused graph this backend's provider runs, if any."""
        return self.bundle.spec.fused_graph

    def _fused_graph_file(self) -> str | None:
        """The bundle's fused graph file, when this backend runs it."""
        entry = self.fused_graph_record()
        if entry is None or not self.options.fused_graph:
            return None
        return entry.file

    def _io_names(self, fused: bool) -> IoNames:
        """The names of the graph this backend runs, as the manifest records them."""
        layers = self.bundle.config.num_layers
        spec, entry = self.bundle.spec, self.fused_graph_record()
        if fused and entry is not None:
            names, where, roles = entry.names(layers), "fused graph", _FUSED_ROLES
        else:
            names, where, roles = spec.graph.names(layers), "graph", _STANDARD_ROLES
        missing = [role for role in roles if getattr(names, role) is None]
        if missing or len(names.past) != 2 * layers:
            raise BundleError(
                f"the manifest's io_names of the {where} lack {', '.join(missing) or 'KV names'}; "
                "export the bundle again"
            )
        return names

    @property
    def graph_path(self) -> Path:
        """The graph file this backend runs."""
        fused = self._fused_graph_file() if self.fused else None
        return self.bundle.path / (fused or self.bundle.manifest["graph"]["file"])

    @classmethod
    def check_available(cls) -> None:
        ort = require("onnxruntime", f"The {cls.name} backend")
        if cls.provider not in ort.get_available_providers():
            raise BackendUnavailableError(
                f"the {cls.name} backend needs onnxruntime's {cls.provider}, which this "
                f"onnxruntime {ort.__version__} does not have "
                f"(it has {', '.join(ort.get_available_providers())}): {install_hint(cls.name)}"
            )

    # -- lifecycle ------------------------------------------------------------------------------

    def session_options(self) -> Any:
        """Session options: threads, the manifest's session config, then the user's."""
        ort = require("onnxruntime", f"The {self.name} backend")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.inter_op_num_threads = 1
        if self.options.threads:
            options.intra_op_num_threads = int(self.options.threads)
        for key, value in self._session_config().items():
            options.add_session_config_entry(key, value)
        return options

    def _session_config(self) -> dict[str, str]:
        entries = dict(self.bundle.manifest.get("onnxruntime", {}).get("session_config", {}))
        entries.update(self.options.session_config)
        return {str(k): str(v) for k, v in entries.items()}

    def _model_sha256(self) -> str:
        return str(self.bundle.manifest["files"][self.graph_path.name]["sha256"])

    def _cache_root(self) -> Path:
        return self.options.cache_dir or default_cache_dir()

    def providers(self) -> list[Any]:
        """The provider list handed to onnxruntime, most preferred first."""
        return ["CPUExecutionProvider"]

    #: What running the standard graph instead of the fused one costs, in words.
    fallback_cost: ClassVar[str] = "slower on the CPU"

    def activate(self) -> None:
        if self.session is not None:
            return
        try:
            self._open_session()
        except BundleError as exc:
            if not self.fused:
                raise
            # e.g. an onnxruntime too old for GroupQueryAttention: the standard graph still runs
            self.fused, self.fused_fallback = False, str(exc)
            warnings.warn(
                f"running the standard graph, {self.fallback_cost}: {exc}",
                RuntimeWarning,
                stacklevel=2,
            )
            self._open_session()

    def _open_session(self) -> None:
        ort = require("onnxruntime", f"The {self.name} backend")
        path = self.graph_path
        self._io = self._io_names(self.fused)
        self._past, self._present = self._io.past, self._io.present
        self._release_lease()
        try:
            options = self.session_options()
            if self.options.optimized_cache and self.cache_device == "cpu":
                path, self._lease = optimized_model(
                    ort,
                    path,
                    self._model_sha256(),
                    self.session_options(),
                    self._session_config(),
                    self._cache_root(),
                )
                if path != self.graph_path:  # already optimized for this machine
                    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            self.session = ort.InferenceSession(str(path), options, providers=self.providers())
        except EdgeError:
            self._release_lease()
            raise
        except Exception as exc:  # onnxruntime raises its own Fail / InvalidGraph types
            self._release_lease()
            raise BundleError(f"onnxruntime cannot load {path} on {self.name}: {exc}") from exc
        active = self.session.get_providers()
        if self.provider not in active:
            self.session = None
            self._release_lease()
            raise BackendUnavailableError(
                f"onnxruntime did not start {self.provider} for {self.name} "
                f"(running {', '.join(active)}): {install_hint(self.name)}"
            )
        names = {i.name for i in self.session.get_inputs()}
        missing = [n for n in self._io.inputs if n not in names]
        if missing:
            raise BundleError(f"{path} lacks the inputs {', '.join(missing)}; export it again")
        self._cache_type = element_type(self.session, self._past[0])
        if element_type(self.session, self._io.logits) != np.float32:
            raise BundleError(
                f"{path}'s {self._io.logits} is not float32, which the runtime reads: "
                "export the bundle again"
            )
        self._binding = self.session.io_binding()
        self._fused_bound = False
        defaults = {i.name for i in self.session.get_overridable_initializers()}
        self._keep = np.ones(1, np.int64) if self.fused and LOGITS_TO_KEEP in defaults else None

    def slot_model(self, slots: int, capacity: int) -> SlotModel | None:
        """Rows over the fused graph (:mod:`edge_sdk.runtime.ort_slots`), their cache at
        :attr:`place`; None on the standard graph."""
        if self.session is None:
            self.activate()
        if not self.fused:
            return None
        from edge_sdk.runtime.ort_slots import FusedSlotModel

        return FusedSlotModel(
            self.session,
            self._cache_shapes,
            self._vocab,
            slots,
            capacity,
            self.device,
            self._io,
            self.place,
        )

    def deactivate(self) -> None:
        self._binding = None
        self.session = None
        self.cache = None
        self._release_lease()

    def _release_lease(self) -> None:
        if self._lease is not None:
            self._lease.release()
            self._lease = None

    @property
    def device(self) -> str:
        graph = f", {self.graph_path.name}"
        if self.session is None:
            return f"onnxruntime {self.provider}{graph}"
        return "onnxruntime " + " > ".join(self.session.get_providers()) + graph

    # -- cache ----------------------------------------------------------------------------------

    def _allocator(self) -> tuple[Any, Clearer]:
        """Allocate a flat buffer of the cache's element type at :attr:`place`; zero one."""
        place, kind = self.place, self._cache_type

        def allocate(n: int) -> tuple[Any, int]:
            buffer = place.allocate((n,), kind)
            return buffer, buffer.pointer

        def clear(buffer: Any, _n: int) -> None:
            place.clear(buffer)

        return allocate, clear

    def allocate(self, max_length: int) -> None:
        if self.session is None:
            self.activate()
        if self.cache is not None and self.cache.capacity == max_length:
            self.cache.reset()
            return
        self.cache = None  # free the old one first
        self._fused_bound = False
        allocate, clear = self._allocator()
        # on a GPU the standard graph's cache is not shortened (no device copy here): a new
        # prompt reuses it only when it extends what the cache holds
        copy: Copier | None = self.place.copy if self.cache_device == "cpu" else None
        itemsize = np.dtype(self._cache_type).itemsize
        self.cache = KVCache(
            self._cache_shapes,
            max_length,
            allocate,
            itemsize,
            shared=self.fused,
            clear=clear,
            copy=copy,
        )
        self._mask = np.ones((1, max_length), dtype=np.int64)

    # -- inference ------------------------------------------------------------------------------

    def forward(self, token_ids: np.ndarray) -> np.ndarray:
        cache, ids = self.checked_ids(token_ids)
        if ids.size == 1:
            self._ids1[0, 0] = ids[0]
            self._pos1[0, 0] = cache.length
            return self._step(cache, self._ids1, self._pos1, self._logits1)
        logits: np.ndarray = self._logits1[0, 0]
        for start in range(0, ids.size, PREFILL_CHUNK):
            chunk = np.ascontiguousarray(ids[start : start + PREFILL_CHUNK]).reshape(1, -1)
            n = chunk.shape[1]
            positions = np.arange(cache.length, cache.length + n, dtype=np.int64).reshape(1, n)
            out = self._logits1 if self.fused else np.empty((1, n, self._vocab), dtype=np.float32)
            logits = self._step(cache, chunk, positions, out)
        return logits

    def forward_all(self, token_ids: np.ndarray) -> np.ndarray:
        """Every position's logits [n, vocab], from each prompt chunk's call (no extra model
        calls): the standard graph returns them all; the fused graph computes its LM head on
        the last ``logits_to_keep`` positions. A fused graph exported before that input runs
        the tokens one at a time (n calls)."""
        if self.fused and self._keep is None:
            return super().forward_all(token_ids)
        cache, ids = self.checked_ids(token_ids)
        rows = np.empty((ids.size, self._vocab), dtype=np.float32)
        for start in range(0, ids.size, PREFILL_CHUNK):
            chunk = np.ascontiguousarray(ids[start : start + PREFILL_CHUNK]).reshape(1, -1)
            n = chunk.shape[1]
            out = rows[None, start : start + n]  # the graph writes [1, n, vocab] into them
            if self.fused:
                self._fused_rows(cache, chunk, out)
                continue
            positions = np.arange(cache.length, cache.length + n, dtype=np.int64).reshape(1, n)
            self._step(cache, chunk, positions, out)
        return rows

    def _fused_rows(self, cache: KVCache, chunk: np.ndarray, out: np.ndarray) -> None:
        """Run ``chunk`` [1, n] on the fused graph with logits for all n positions into
        ``out`` [1, n, vocab]; the bindings are back to one position afterwards."""
        assert self._keep is not None
        bind, name = self._binding, self._io.logits
        self._bind_fused(cache, chunk)
        self._keep[0] = chunk.shape[1]
        bind.bind_output(name, "cpu", 0, np.float32, list(out.shape), out.ctypes.data)
        try:
            self._step(cache, chunk, chunk, out)
        finally:
            self._keep[0] = 1
            one = self._logits1
            bind.bind_output(name, "cpu", 0, np.float32, list(one.shape), one.ctypes.data)

    def speculation_problem(self) -> str | None:
        if self.cache_device != "cpu" and not self.fused:
            return (
                f"the {self.name} backend cannot cut rejected drafts from the standard graph's "
                "cache on the GPU: load the bundle with backend='ort-cpu' (or a bundle with the "
                "CUDA graph on ort-cuda), or generate without speculative"
            )
        if self.session is not None and self.fused and self._keep is None:
            return (
                f"the fused graph of {self.bundle.path} returns the last position's logits "
                "only (exported before logits_to_keep): export the bundle again, or load it "
                "with fused_graph=False"
            )
        return None

    def _step(
        self, cache: KVCache, ids: np.ndarray, positions: np.ndarray, logits: np.ndarray
    ) -> np.ndarray:
        n = ids.shape[1]
        if self.fused:
            self._bind_fused(cache, ids)
        else:
            self._bind_standard(cache, ids, positions, logits)
        try:
            self.session.run_with_iobinding(self._binding)
        except Exception as exc:  # onnxruntime's own error types
            raise GenerationError(f"onnxruntime failed on {self.name}: {exc}") from exc
        cache.advance(n)
        last: np.ndarray = logits[0, -1]
        return last

    def _bind_standard(
        self, cache: KVCache, ids: np.ndarray, positions: np.ndarray, logits: np.ndarray
    ) -> None:
        """Bind everything: the cache's past and present swap buffers and grow every step."""
        bind, io = self._binding, self._io
        n = ids.shape[1]
        bind.bind_input(io.input_ids, "cpu", 0, np.int64, [1, n], ids.ctypes.data)
        bind.bind_input(io.position_ids, "cpu", 0, np.int64, [1, n], positions.ctypes.data)
        bind.bind_input(
            io.attention_mask, "cpu", 0, np.int64, [1, cache.length + n], self._mask.ctypes.data
        )
        self._bind_cache(cache, n)
        bind.bind_output(io.logits, "cpu", 0, np.float32, list(logits.shape), logits.ctypes.data)

    def _bind_cache(self, cache: KVCache, n: int, only: tuple[int, ...] | None = None) -> None:
        """Bind the cache tensors (``only`` those indices) as past inputs and present outputs."""
        bind = self._binding
        device, device_id = self.cache_device, self.options.device_id
        past_shapes, present_shapes = cache.past_shapes(), cache.present_shapes(n)
        past, present = cache.past_pointers, cache.present_pointers
        kind = self._cache_type
        for i in range(len(past)) if only is None else only:
            bind.bind_input(self._past[i], device, device_id, kind, past_shapes[i], past[i])
            bind.bind_output(
                self._present[i], device, device_id, kind, present_shapes[i], present[i]
            )

    def _bind_fused(self, cache: KVCache, ids: np.ndarray) -> None:
        """The fused graph's K/V buffers never move: bind them once per cache, then only write
        values.

        A decode step rebinds only the state tensors whose buffers swap (a hybrid model's: its
        ids array is always ``_ids1``); a prompt chunk rebinds ``input_ids`` too.
        """
        bind, io = self._binding, self._io
        total = cache.length + ids.shape[1]
        self._seqlens_k[0], self._total[()] = total - 1, total
        if not self._fused_bound:
            self._bind_cache(cache, 0)
            bind.bind_input(io.seqlens_k, "cpu", 0, np.int32, [1], self._seqlens_k.ctypes.data)
            bind.bind_input(
                io.total_sequence_length, "cpu", 0, np.int32, [], self._total.ctypes.data
            )
            bind.bind_output(
                io.logits,
                "cpu",
                0,
                np.float32,
                list(self._logits1.shape),
                self._logits1.ctypes.data,
            )
            if self._keep is not None:
                bind.bind_input(LOGITS_TO_KEEP, "cpu", 0, np.int64, [1], self._keep.ctypes.data)
            self._fused_bound, self._ids_bound = True, None
        elif cache.moving:
            self._bind_cache(cache, 0, cache.moving)
        key = (ids.ctypes.data, ids.shape[1])
        if key != self._ids_bound:
            bind.bind_input(io.input_ids, "cpu", 0, np.int64, [1, key[1]], key[0])
            self._ids_bound = key


class OrtCpuBackend(OrtBackend):
    """onnxruntime on the CPU (``pip install 'edge-sdk-orin[cpu]'``)."""

    name = "ort-cpu"
    provider = "CPUExecutionProvider"


class OrtCudaBackend(OrtBackend):
    """onnxruntime's CUDA EP, then the CPU for nodes CUDA cannot run.

    Runs the bundle's CUDA fused graph (``model.cuda.onnx``, fp16) when it has one: its cache is
    device ``OrtValue`` s bound once, its rows batch; else the standard graph with one slot
    (with one warning that says why).
    """

    name = "ort-cuda"
    provider = "CUDAExecutionProvider"
    cache_device = "cuda"
    ort_values = True
    fallback_cost = "one slot on the GPU"

    def fused_graph_record(self) -> CudaGraph | None:
        return self.bundle.spec.cuda_graph

    def activate(self) -> None:
        starting = self.session is None
        super().activate()
        if starting and self.options.fused_graph and self.fused_graph_record() is None:
            record = self.bundle.spec.onnxruntime
            skipped = None if record is None else record.cuda_graph_skipped
            why = f" ({skipped})" if skipped else ""
            self.fused_fallback = f"the bundle has no CUDA graph{why}"
            warnings.warn(
                f"running the standard graph, {self.fallback_cost}: {self.fused_fallback}; "
                "export it with edge-export --cuda-graph for batched fp16 decoding",
                RuntimeWarning,
                stacklevel=2,
            )

    def providers(self) -> list[Any]:
        return [
            ("CUDAExecutionProvider", {"device_id": self.options.device_id}),
            "CPUExecutionProvider",
        ]


class OrtTensorrtBackend(OrtBackend):
    """onnxruntime's TensorRT EP (INT8 for int8 bundles, FP16, an engine cache), then CUDA, CPU.

    The first load builds TensorRT engines (minutes on an Orin) into the cache directory; later
    loads reuse them.
    """

    name = "ort-tensorrt"
    provider = "TensorrtExecutionProvider"
    cache_device = "cuda"
    ort_values = True

    def fused_graph_record(self) -> None:
        return None  # TensorRT takes no contrib ops: the standard graph, one slot

    def engine_cache_dir(self) -> Path:
        """Where TensorRT engines for this bundle are kept."""
        return self._cache_root() / "trt" / f"{self.bundle.path.name}-{self._model_sha256()[:12]}"

    def _profile(self, past: int, new: int) -> str:
        io = self._io
        shapes = [
            f"{io.input_ids}:1x{new}",
            f"{io.position_ids}:1x{new}",
            f"{io.attention_mask}:1x{past + new}",
        ]
        for name, shape in zip(self._past, self._cache_shapes, strict=True):
            dims = [1, *(past if d is None else d for d in shape)]
            shapes.append(f"{name}:{'x'.join(str(d) for d in dims)}")
        return ",".join(shapes)

    def activate(self) -> None:
        super().activate()  # engines built now are written into the entry: then fit the cap
        enforce_cap(self._cache_root(), keep=self.engine_cache_dir())

    def providers(self) -> list[Any]:
        cache_dir = self.engine_cache_dir()
        cache_dir.mkdir(parents=True, exist_ok=True)
        self._release_lease()
        self._lease = use_entry(cache_dir)  # held while the session lives
        ranges = ep_ranges(self.bundle.max_sequence_length)
        (past_min, past_opt, past_max), (new_min, new_opt, new_max) = (
            ranges["past_sequence"],
            ranges["sequence"],
        )
        trt = {
            "device_id": self.options.device_id,
            "trt_fp16_enable": True,
            "trt_int8_enable": self.bundle.precision in INT8_QDQ_PRECISIONS,
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": str(cache_dir),
            "trt_timing_cache_enable": True,
            "trt_timing_cache_path": str(cache_dir),
            "trt_profile_min_shapes": self._profile(past_min, new_min),
            "trt_profile_opt_shapes": self._profile(past_opt, new_opt),
            "trt_profile_max_shapes": self._profile(past_max, new_max),
        }
        trt.update(self._engine_record_options())
        return [
            ("TensorrtExecutionProvider", trt),
            ("CUDAExecutionProvider", {"device_id": self.options.device_id}),
            "CPUExecutionProvider",
        ]

    def _engine_record_options(self) -> dict[str, Any]:
        """Workspace cap and builder level of the bundle's last ``edge-engine`` build, if any."""
        engines = self.bundle.manifest.get("engines") or []
        if not engines:
            return {}
        record = engines[-1]
        options: dict[str, Any] = {}
        if record.get("workspace_mb"):
            options["trt_max_workspace_size"] = int(record["workspace_mb"]) * 2**20
        if record.get("builder_optimization_level") is not None:
            options["trt_builder_optimization_level"] = int(record["builder_optimization_level"])
        return options
