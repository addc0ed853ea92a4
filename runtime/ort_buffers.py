"""Cache buffers where onnxruntime computes, and byte copies between them.

A :class:`Place` says where a backend's cache lives: host numpy arrays (``ort-cpu``), or
``OrtValue`` buffers on an onnxruntime device (``ort-cuda``: ``"cuda"``; the same code runs
with OrtValues on ``"cpu"`` in the tests). Either way a buffer is one allocation bound by
pointer (I/O binding takes a device name, an element type, a shape and an address), so a row or
a slice of it is bound at an offset: an ``OrtValue`` has no slicing.

Row copies (a hybrid model's state rows, checkpoints, the prompt cache's host store) go through
:meth:`Place.copy`: ``memmove`` on the host; on a CUDA device ``cudaMemcpy`` with
``cudaMemcpyDefault`` (unified addressing: the pointers say the direction), from the CUDA
runtime library onnxruntime's CUDA EP has already loaded. It is synchronous, and it runs only
between model calls, after ``run_with_iobinding`` has returned (its logits output is on the
host, so the call's work on the device is done).
"""

from __future__ import annotations

import ctypes
import math
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from edge_sdk._optional import require
from edge_sdk.errors import BackendUnavailableError, BundleError, GenerationError
from edge_sdk.runtime.kv_cache import copy_host

__all__ = ["HOST", "Buffer", "Place", "element_type"]

_ELEMENT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}
_CUDA_MEMCPY_DEFAULT = 4  # cudaMemcpyKind: direction inferred from the pointers
_CUDART = ("libcudart.so", "libcudart.so.13", "libcudart.so.12", "libcudart.so.11.0")


def element_type(session: Any, name: str) -> type[np.floating[Any]]:
    """The numpy type of the session's float input or output ``name`` (float32 or float16)."""
    for arg in [*session.get_inputs(), *session.get_outputs()]:
        if arg.name == name:
            kind = _ELEMENT_TYPES.get(arg.type)
            if kind is None:
                raise BundleError(
                    f"the graph's {name} is {arg.type}; the runtime binds float32 or float16: "
                    "export the bundle again"
                )
            return kind
    raise BundleError(f"the graph has no input or output {name}; export the bundle again")


@dataclass(frozen=True)
class Buffer:
    """One allocation of ``shape`` (axis 0: rows), kept alive by ``owner``, at ``pointer``."""

    owner: Any
    pointer: int
    shape: tuple[int, ...]
    dtype: np.dtype[Any]

    @property
    def row_nbytes(self) -> int:
        """Bytes of one row (axis 0)."""
        return math.prod(self.shape[1:]) * self.dtype.itemsize

    @property
    def nbytes(self) -> int:
        return self.shape[0] * self.row_nbytes

    def row(self, index: int) -> int:
        """The address of row ``index``."""
        return self.pointer + index * self.row_nbytes


@dataclass(frozen=True)
class Place:
    """Where cache buffers live: onnxruntime's ``device`` name and id, and whether they are
    ``OrtValue`` s (else host numpy arrays, ``device`` "cpu")."""

    device: str = "cpu"
    device_id: int = 0
    ort_values: bool = False

    def allocate(self, shape: tuple[int, ...], dtype: type[np.floating[Any]]) -> Buffer:
        """A zeroed buffer."""
        if not self.ort_values:
            array = np.zeros(shape, dtype)
            return Buffer(array, int(array.ctypes.data), shape, array.dtype)
        ort = require("onnxruntime", "The onnxruntime backends")
        value = ort.OrtValue.ortvalue_from_shape_and_type(
            list(shape), dtype, self.device, self.device_id
        )
        value.update_inplace(np.zeros(shape, dtype))
        return Buffer(value, int(value.data_ptr()), shape, np.dtype(dtype))

    def clear(self, buffer: Buffer) -> None:
        """Set ``buffer`` to zeros."""
        if isinstance(buffer.owner, np.ndarray):
            buffer.owner.fill(0)
        else:
            buffer.owner.update_inplace(np.zeros(buffer.shape, buffer.dtype))

    def copy(self, dst: int, src: int, nbytes: int) -> None:
        """Copy ``nbytes`` from ``src`` to ``dst`` (either may be a host address)."""
        if self.device == "cpu":
            copy_host(dst, src, nbytes)
            return
        cudart = _cudart()
        code = cudart.cudaMemcpy(
            ctypes.c_void_p(dst),
            ctypes.c_void_p(src),
            ctypes.c_size_t(nbytes),
            _CUDA_MEMCPY_DEFAULT,
        )
        if code != 0:
            reason = cudart.cudaGetErrorString(code).decode(errors="replace")
            raise GenerationError(
                f"cudaMemcpy of {nbytes} bytes failed: {reason} (CUDA error {code}); "
                "check the GPU with nvidia-smi (tegrastats on a Jetson), or run on ort-cpu"
            )


HOST = Place()


@cache
def _cudart() -> Any:
    """The CUDA runtime library (already in the process when onnxruntime's CUDA EP runs)."""
    for name in _CUDART:
        try:
            library = ctypes.CDLL(name)
        except OSError:
            continue
        library.cudaMemcpy.restype = ctypes.c_int
        library.cudaGetErrorString.restype = ctypes.c_char_p
        return library
    raise BackendUnavailableError(
        "copying cache rows on the GPU needs the CUDA runtime (libcudart), which onnxruntime's "
        "CUDA EP loads: install CUDA (JetPack on a Jetson) or run on ort-cpu"
    )
