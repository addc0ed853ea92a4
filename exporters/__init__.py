"""Exporters: a Lite model (``model.pt`` or a Hugging Face folder) to a verified ONNX bundle.

Needs the ``export`` extra (torch, onnx) and onnxruntime (``cpu`` extra) for the checks::

    from edge_sdk.exporters import export
    result = export("model.pt", "model-int8", "int8")
    result = export("model.pt", "model-int4", quant=QuantConfig(method="GPTQ", bits=4, group_size=128))
"""

from edge_sdk.exporters.checkpoint import LoadedModel, load_checkpoint, save_checkpoint
from edge_sdk.exporters.evaluate import THRESHOLDS, AccuracyReport
from edge_sdk.exporters.export import ExportResult, Precision, export
from edge_sdk.exporters.loaders import demo_checkpoint_path, load_model
from edge_sdk.exporters.model import LiteForCausalLM
from edge_sdk.exporters.quant_config import QuantConfig

__all__ = [
    "THRESHOLDS",
    "AccuracyReport",
    "ExportResult",
    "LiteForCausalLM",
    "LoadedModel",
    "Precision",
    "QuantConfig",
    "demo_checkpoint_path",
    "export",
    "load_checkpoint",
    "load_model",
    "save_checkpoint",
]
