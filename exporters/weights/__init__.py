"""Weight sources: named float32 tensors of a checkpoint, read one at a time on demand.

:class:`WeightSource` is the protocol; one class per file format implements it (safetensors
memory-mapped, GGUF dequantized per tensor, an in-memory or ``mmap``-loaded state dict).
"""

from edge_sdk.exporters.weights.gguf_file import GgufWeights
from edge_sdk.exporters.weights.safetensors_file import SafetensorsWeights
from edge_sdk.exporters.weights.source import WeightSource
from edge_sdk.exporters.weights.state_dict import StateDictWeights
from edge_sdk.exporters.weights.text_part import TextPartWeights

__all__ = [
    "GgufWeights",
    "SafetensorsWeights",
    "StateDictWeights",
    "TextPartWeights",
    "WeightSource",
]
