"""Model families: one module each, found by ``ModelConfig.architecture`` in :data:`FAMILY_TABLE`.

A family module says, for its decoder layer: which tensors it reads (Hugging Face names and
shapes), how the PyTorch reference layer is built from them (parity, calibration), which Linears
share an input (activation scaling), and how one layer is written into each graph: the standard
one (standard ONNX ops, for TensorRT and every onnxruntime provider) and the fused one
(onnxruntime contrib ops, for its CPU EP). Adding a family is one new module and one row here.
"""

from __future__ import annotations

from types import ModuleType

from edge_sdk.config import ModelConfig
from edge_sdk.errors import UnsupportedModelError
from edge_sdk.exporters.families import gemma3, llama, qwen3, qwen3_5
from edge_sdk.exporters.families.base import Family, LayerTensors

__all__ = ["FAMILY_TABLE", "Family", "LayerTensors", "family_of"]

#: ``ModelConfig.architecture`` -> the module that exports it.
FAMILY_TABLE: dict[str, ModuleType] = {
    "llama": llama,
    "qwen2": llama,
    "mistral": llama,
    "qwen3": qwen3,
    "gemma3": gemma3,
    "qwen3_5": qwen3_5,
}


def family_of(config: ModelConfig) -> Family:
    """The family module of ``config``."""
    module = FAMILY_TABLE.get(config.architecture)
    if module is None:
        raise UnsupportedModelError(
            f"no exporter for the {config.architecture!r} family; supported: "
            f"{', '.join(sorted(FAMILY_TABLE))}"
        )
    family: Family = module
    return family
