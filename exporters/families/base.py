"""What every family module provides (a Protocol), and the tensors of one layer as exported."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from torch import nn

from edge_sdk.config import ModelConfig
from edge_sdk.exporters.quantize.qweight import QWeight
from edge_sdk.exporters.quantize.scaling import ScaleGroup
from edge_sdk.exporters.stream.onnx_builder import GraphBuilder
from edge_sdk.exporters.stream.ops import FusedState

__all__ = ["Family", "FusedState", "LayerTensors", "StandardInputs"]


@dataclass
class LayerTensors:
    """One layer's weights as the graphs store them: MatMul weights by short name (``q_proj``),
    vectors (norm weights, biases) by their name inside the layer."""

    index: int
    matmuls: dict[str, QWeight] = field(default_factory=dict)
    vectors: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class StandardInputs:
    """Tensors of the standard graph every layer reads: RoPE tables for q [B, 1, 1, S, D] and k
    [B, 1, S, D], the additive attention bias [B, 1, 1, S, T]."""

    cos_q: str
    sin_q: str
    cos_k: str
    sin_k: str
    bias: str


class Family(Protocol):
    """A family module's functions (see :mod:`edge_sdk.exporters.families`)."""

    def layer_shapes(self, config: ModelConfig, index: int) -> dict[str, tuple[int, ...]]:
        """Hugging Face name -> shape of every tensor of layer ``index``."""
        ...

    def reference_layer(self, config: ModelConfig, tensors: dict[str, np.ndarray]) -> nn.Module:
        """The float PyTorch layer holding ``tensors`` (names inside the layer, HF layout)."""
        ...

    def linears(self, layer: nn.Module) -> dict[str, nn.Linear]:
        """The layer's weight Linears by short name, in the order they run."""
        ...

    def scale_groups(self, config: ModelConfig, layer: nn.Module, index: int) -> list[ScaleGroup]:
        """Linears sharing one input and the op producing it (AWQ, SmoothQuant)."""
        ...

    def layer_tensors(
        self, layer: nn.Module, index: int, matmuls: dict[str, QWeight]
    ) -> LayerTensors:
        """The layer's quantized MatMuls plus its vectors read from ``layer`` (after scaling)."""
        ...

    def emit_standard(
        self,
        g: GraphBuilder,
        config: ModelConfig,
        x: str,
        shared: StandardInputs,
        tensors: LayerTensors,
    ) -> str:
        """Write the layer into the standard graph; its output hidden state."""
        ...

    def emit_fused(
        self,
        g: GraphBuilder,
        config: ModelConfig,
        state: FusedState,
        rope_cache: tuple[str, str],
        tensors: LayerTensors,
    ) -> FusedState:
        """Write the layer into the fused onnxruntime graph."""
        ...
