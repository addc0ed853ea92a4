"""Exporters: a Lite model (``model.pt`` or a Hugging Face folder) to a verified ONNX bundle.

Needs the ``export`` extra (torch, onnx) and onnxruntime (``cpu`` extra) for the checks::

    from edge_sdk.exporters import export
    result = export("model.pt", "model-int8", "int8")
"""

from edge_sdk.exporters.checkpoint import LoadedModel, load_checkpoint, save_checkpoint
from edge_sdk.exporters.evaluate import THRESHOLDS, AccuracyReport
from edge_sdk.exporters.export import ExportResult, Precision, export
from edge_sdk.exporters.loaders import demo_checkpoint_path, load_model
from edge_sdk.exporters.model import LiteForCausalLM

__all__ = [
    "export",
    "ExportResult",
    "Precision",
    "AccuracyReport",
    "THRESHOLDS",
    "LiteForCausalLM",
    "LoadedModel",
    "load_model",
    "load_checkpoint",
    "save_checkpoint",
    "demo_checkpoint_path",
]
