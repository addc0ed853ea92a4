"""Exporters: a Lite model (``model.pt`` or a Hugging Face folder) to a verified ONNX bundle.

Needs the ``export`` extra (torch, onnx) and onnxruntime (``cpu`` extra) for the checks::

    from edge_sdk.exporters import export
    result = export("model.pt", "model-int8", "int8")     # streamed: one layer at a time
    config = QuantConfig(method="GPTQ", bits=4, group_size=128)
    result = export("model.pt", "model-int4", quant=config)

Without the ``export`` extra the package still imports (``edge-export --help``, ``edge-engine``
and the torch-free modules work); using a name below then raises
:class:`~edge_sdk.BackendUnavailableError` saying what to install.
"""

from typing import Any

try:
    from edge_sdk.exporters.checkpoint import LoadedModel, load_checkpoint, save_checkpoint
    from edge_sdk.exporters.evaluate import THRESHOLDS, AccuracyReport
    from edge_sdk.exporters.export import ExportResult, Precision, export
    from edge_sdk.exporters.loaders import demo_checkpoint_path, load_model
    from edge_sdk.exporters.model import LiteForCausalLM
    from edge_sdk.exporters.quantize.config import QuantConfig
    from edge_sdk.exporters.sources import ModelSource, open_model
except ModuleNotFoundError as _missing:  # torch or onnx: named when a name is used
    _MISSING_MODULE = _missing.name or "torch"
    if _MISSING_MODULE.split(".")[0] not in ("torch", "onnx", "onnxscript", "safetensors"):
        raise

    def __getattr__(name: str) -> Any:
        if name in __all__:
            from edge_sdk._optional import require

            require(_MISSING_MODULE, f"edge_sdk.exporters.{name}")  # raises: it was not importable
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "THRESHOLDS",
    "AccuracyReport",
    "ExportResult",
    "LiteForCausalLM",
    "LoadedModel",
    "ModelSource",
    "Precision",
    "QuantConfig",
    "demo_checkpoint_path",
    "export",
    "load_checkpoint",
    "load_model",
    "open_model",
    "save_checkpoint",
]
