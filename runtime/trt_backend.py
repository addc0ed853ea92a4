"""Native TensorRT backend: the bundle's engine, device buffers from pycuda, no onnxruntime.

::

    activate   deserialize the engine that matches this TensorRT and GPU (runtime/trt_engine.py),
               one execution context, one CUDA stream
    allocate   once per generation: the KV cache for the whole context (two device buffers per
               tensor, swapped each step: runtime/kv_cache.py), token ids, positions, the
               attention mask (all ones, uploaded once) and the logits of one prefill chunk
    forward    set_input_shape + set_tensor_address by name, execute_async_v3 on the stream,
               copy back only the last position's logits [vocab]

Profile 0 (``prefill``) serves chunks of several tokens, profile 1 (``decode``) single tokens;
the context switches between them when the step kind changes. ``tensorrt`` and ``pycuda`` are
imported only here, when the backend starts.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edge_sdk._optional import require
from edge_sdk.bundle import Bundle
from edge_sdk.errors import BundleError, GenerationError
from edge_sdk.onnx_io import cache_tensors
from edge_sdk.runtime.backend import BackendOptions, KVCacheBackend
from edge_sdk.runtime.kv_cache import KVCache
from edge_sdk.runtime.trt_engine import select_engine
from edge_sdk.shapes import PREFILL_CHUNK

__all__ = ["PREFILL_CHUNK", "TensorrtBackend"]


class TensorrtBackend(KVCacheBackend):
    """The bundle's TensorRT engine, run with the name-based tensor API on a CUDA stream."""

    name = "tensorrt"

    def __init__(self, bundle: Bundle, options: BackendOptions) -> None:
        super().__init__(bundle, options)
        config = bundle.config
        self._layers, self._vocab = config.num_layers, config.vocab_size
        self._cache_shapes = [t.shape for t in cache_tensors(config)]
        # the engine is built from the standard graph: its tensors carry that graph's names
        self._io = bundle.spec.graph.names(config.num_layers)
        self._past, self._present = self._io.past, self._io.present
        io = self._io
        if io.attention_mask is None or io.position_ids is None:
            raise BundleError(
                "the manifest's graph.io_names lack attention_mask or position_ids; "
                "export the bundle again"
            )
        self._ids_name, self._logits_name = io.input_ids, io.logits
        self._mask_name, self._positions_name = io.attention_mask, io.position_ids
        self.record: dict[str, Any] = {}
        self._cuda: Any = None
        self._cuda_context: Any = None
        self._engine: Any = None
        self._context: Any = None
        self._stream: Any = None
        self._dtypes: dict[str, Any] = {}
        self._buffers: dict[str, Any] = {}
        self._host: dict[str, np.ndarray] = {}
        self._profile = -1

    @classmethod
    def check_available(cls) -> None:
        require("tensorrt", "The tensorrt backend")
        require("pycuda.driver", "The tensorrt backend")

    # -- lifecycle ------------------------------------------------------------------------------

    def activate(self) -> None:
        if self._context is not None:
            return
        trt = require("tensorrt", "The tensorrt backend")
        cuda = require("pycuda.driver", "The tensorrt backend")
        cuda.init()
        device = cuda.Device(self.options.device_id)
        self._cuda, self._cuda_context = cuda, device.retain_primary_context()
        self._cuda_context.push()
        major, minor = device.compute_capability()
        self.record = select_engine(
            self.bundle.manifest,
            trt.__version__,
            str(device.name()),
            f"{major}.{minor}",
            str(self.bundle.path),
        )
        data = (self.bundle.path / self.record["file"]).read_bytes()
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self._engine = runtime.deserialize_cuda_engine(data)
        if self._engine is None:
            self.deactivate()
            raise BundleError(
                f"TensorRT {trt.__version__} cannot load {self.record['file']}; "
                f"rebuild it here: edge-engine {self.bundle.path}"
            )
        self._context = self._engine.create_execution_context()
        self._stream = cuda.Stream()
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        self._dtypes = {n: np.dtype(trt.nptype(self._engine.get_tensor_dtype(n))) for n in names}
        missing = [n for n in (*self._io.inputs, *self._io.outputs) if n not in self._dtypes]
        if missing:
            raise BundleError(
                f"{self.record['file']} lacks the tensors {', '.join(missing)}; "
                f"rebuild it: edge-engine {self.bundle.path}"
            )

    def deactivate(self) -> None:
        self.cache = None
        self._buffers, self._host = {}, {}
        self._context = self._engine = self._stream = None
        if self._cuda_context is not None:
            self._cuda_context.pop()
            self._cuda_context = None
        self._profile = -1

    @property
    def device(self) -> str:
        return f"TensorRT {self.record.get('tensorrt', '')} {self.record.get('file', '')}".strip()

    # -- buffers --------------------------------------------------------------------------------

    def allocate(self, max_length: int) -> None:
        if self._context is None:
            self.activate()
        built_for = int(self.record.get("max_sequence_length", max_length))
        if max_length > built_for:
            raise GenerationError(
                f"the engine serves {built_for} positions, {max_length} asked; "
                f"rebuild it with edge-engine --max-seq-len {max_length}"
            )
        if self.cache is not None and self.cache.capacity == max_length:
            self.cache.reset()
            return
        cuda = self._cuda
        kv_type = self._dtypes[self._past[0]]
        self.cache = None
        self.cache = KVCache(
            self._cache_shapes,
            max_length,
            self._device_allocator(kv_type.itemsize),
            itemsize=kv_type.itemsize,
            clear=lambda memory, n: cuda.memset_d8(int(memory), 0, max(1, n) * kv_type.itemsize),
            copy=lambda dst, src, nbytes: cuda.memcpy_dtod(dst, src, nbytes),
        )
        chunk = min(PREFILL_CHUNK, max_length)
        ids, positions, mask = self._ids_name, self._positions_name, self._mask_name
        for name, size in ((ids, chunk), (positions, chunk), (mask, max_length)):
            self._host[name] = cuda.pagelocked_empty(size, self._dtypes[name])
            self._buffers[name] = cuda.mem_alloc(size * self._dtypes[name].itemsize)
        self._host[mask][:] = 1
        cuda.memcpy_htod_async(self._buffers[mask], self._host[mask], self._stream)
        logits = self._logits_name
        logits_type = self._dtypes[logits]
        self._buffers[logits] = cuda.mem_alloc(chunk * self._vocab * logits_type.itemsize)
        self._host[logits] = cuda.pagelocked_empty(self._vocab, logits_type)

    def _device_allocator(self, itemsize: int) -> Any:
        cuda = self._cuda

        def allocate(n: int) -> tuple[Any, int]:
            memory = cuda.mem_alloc(max(1, n) * itemsize)
            return memory, int(memory)

        return allocate

    # -- inference ------------------------------------------------------------------------------

    def forward(self, token_ids: np.ndarray) -> np.ndarray:
        _, ids = self.checked_ids(token_ids)
        logits = self._host[self._logits_name]
        for start in range(0, ids.size, PREFILL_CHUNK):
            logits = self._step(ids[start : start + PREFILL_CHUNK])
        return logits.astype(np.float32, copy=False)

    def _step(self, ids: np.ndarray) -> np.ndarray:
        cache, cuda, context, stream = self.cache, self._cuda, self._context, self._stream
        assert cache is not None
        n = ids.size
        profile = 1 if n == 1 and self._engine.num_optimization_profiles > 1 else 0
        if profile != self._profile:
            context.set_optimization_profile_async(profile, stream.handle)
            self._profile = profile
        host, buffers = self._host, self._buffers
        ids_name, positions, mask = self._ids_name, self._positions_name, self._mask_name
        host[ids_name][:n] = ids
        host[positions][:n] = np.arange(cache.length, cache.length + n)
        for name in (ids_name, positions):
            cuda.memcpy_htod_async(buffers[name], host[name][:n], stream)
            context.set_input_shape(name, (1, n))
            context.set_tensor_address(name, int(buffers[name]))
        context.set_input_shape(mask, (1, cache.length + n))
        context.set_tensor_address(mask, int(buffers[mask]))
        for name, shape, ptr in zip(
            self._past, cache.past_shapes(), cache.past_pointers, strict=True
        ):
            context.set_input_shape(name, tuple(shape))
            context.set_tensor_address(name, ptr)
        for name, ptr in zip(self._present, cache.present_pointers, strict=True):
            context.set_tensor_address(name, ptr)
        logits = self._logits_name
        context.set_tensor_address(logits, int(buffers[logits]))
        if not context.execute_async_v3(stream.handle):
            raise GenerationError("TensorRT failed to run the engine (see its messages above)")
        row = self._vocab * self._dtypes[logits].itemsize
        cuda.memcpy_dtoh_async(host[logits], int(buffers[logits]) + (n - 1) * row, stream)
        stream.synchronize()
        cache.advance(n)
        return host[logits]
