"""The bundle manifest's typed schema: frozen records with ``from_dict`` / ``to_dict``.

::

    Manifest                 manifest.json
    ├── ModelRecord          model: name, source, config, parameters
    ├── TokenizerRecord      tokenizer: file, kind
    ├── GraphRecord          graph: file, opset, inputs/outputs (TensorSpec), context, KV layout
    │   └── IoNames          graph.io_names: each input and output's name, by role
    ├── Quantization         precision: name, config, weights, calibration, ...
    ├── OrtRecord            onnxruntime: session config, fused_graph (FusedGraph, its IoNames),
    │                        cuda_graph (CudaGraph: the fp16 fused graph for the CUDA EP)
    ├── Accuracy             accuracy: parity_vs_pytorch (Parity), quantized_vs_float, thresholds
    ├── EngineRecord         engines[i]: one TensorRT engine
    └── FileRecord           files[name]: size, SHA-256

Reading checks every type: a wrong or missing field raises :class:`~edge_sdk.BundleError` that
names it (``manifest.json: graph.file must be a string; export the bundle again ...``). Keys a
record does not know are kept in its ``extra``, so a manifest round-trips unchanged.
"""

from __future__ import annotations

from edge_sdk.manifest.accuracy import Accuracy, Parity
from edge_sdk.manifest.engine import EngineRecord
from edge_sdk.manifest.graphs import CudaGraph, FusedGraph, GraphRecord, IoNames, TensorSpec
from edge_sdk.manifest.manifest import (
    FileRecord,
    Manifest,
    ModelRecord,
    OrtRecord,
    TokenizerRecord,
)
from edge_sdk.manifest.quantization import Quantization

__all__ = [
    "Accuracy",
    "CudaGraph",
    "EngineRecord",
    "FileRecord",
    "FusedGraph",
    "GraphRecord",
    "IoNames",
    "Manifest",
    "ModelRecord",
    "OrtRecord",
    "Parity",
    "Quantization",
    "TensorSpec",
    "TokenizerRecord",
]
