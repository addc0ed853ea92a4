"""The ``ort-cuda`` backend's code path with the CPU EP at the provider boundary.

:class:`CudaPathOnCpu` is :class:`~edge_sdk.runtime.ort_backend.OrtCudaBackend` whose provider
list is the CPU EP's and whose cache ``OrtValue`` s live on ``"cpu"``: it runs the CUDA fused
graph (``model.cuda.onnx``, fp16 activations and cache), allocates and binds its buffers exactly
as on the GPU (OrtValues, pointer offsets, the session's element type) and batches rows through
the same :class:`~edge_sdk.runtime.ort_slots.FusedSlotModel`. Only the device name and the row
copier (``memmove`` instead of ``cudaMemcpy``) differ.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from edge_sdk.bundle import load_bundle
from edge_sdk.runtime import Generator
from edge_sdk.runtime.backend import BackendOptions
from edge_sdk.runtime.ort_backend import OrtCpuBackend, OrtCudaBackend
from edge_sdk.tokenizer import Tokenizer


class CudaPathOnCpu(OrtCudaBackend):
    """``ort-cuda`` with the CPU EP and its cache OrtValues on ``"cpu"``."""

    provider = "CPUExecutionProvider"
    cache_device = "cpu"

    def providers(self) -> list[Any]:
        return ["CPUExecutionProvider"]


def cuda_path_generator(bundle: Path, max_context: int = 256, **options: Any) -> Generator:
    """A generator over :class:`CudaPathOnCpu` (the bundle's graph file as it is: no
    CPU-optimized cache)."""
    loaded = load_bundle(bundle, verify=False)
    backend = CudaPathOnCpu(loaded, BackendOptions(threads=2, optimized_cache=False, **options))
    backend.activate()
    return Generator(loaded, backend, Tokenizer(loaded.tokenizer_path), max_context)


def with_cuda_graph(source: Path, folder: Path, positions: int = 16) -> Path:
    """A copy of the bundle at ``source`` in ``folder`` with its CUDA graph added (seconds on
    the demo: the fp16 check decodes ``positions`` held-out tokens)."""
    from edge_sdk.exporters.cuda_graph import add_cuda_graph

    shutil.copytree(source, folder)
    add_cuda_graph(folder, positions=positions)
    return folder


class FusedGraphOnOrtValues(OrtCpuBackend):
    """``ort-cpu``'s fused graph with its cache in ``OrtValue`` s (on ``"cpu"``), bound and
    copied by address as on the GPU: the row code of a graph the fp16 export does not cover
    (a hybrid model's states)."""

    ort_values = True


def ort_values_generator(bundle: Path, max_context: int = 256) -> Generator:
    """A generator over :class:`FusedGraphOnOrtValues`."""
    loaded = load_bundle(bundle, verify=False)
    backend = FusedGraphOnOrtValues(loaded, BackendOptions(threads=2))
    backend.activate()
    return Generator(loaded, backend, Tokenizer(loaded.tokenizer_path), max_context)
