"""Native TensorRT backend (engine file in the bundle, no onnxruntime): not in this release.

The name ``tensorrt`` is reserved so that scripts can ask for it; today it checks that the
TensorRT Python bindings are present and then says to use ``ort-tensorrt``, onnxruntime's
TensorRT execution provider, which runs the same graph through TensorRT.
"""

from __future__ import annotations

import numpy as np

from edge_sdk._optional import require
from edge_sdk.errors import BackendUnavailableError
from edge_sdk.runtime.backend import Backend

__all__ = ["TensorrtBackend"]


class TensorrtBackend(Backend):
    """Placeholder for engines run directly with TensorRT (see the module docstring)."""

    name = "tensorrt"

    @classmethod
    def check_available(cls) -> None:
        require("tensorrt", "The tensorrt backend")
        require("pycuda.driver", "The tensorrt backend")
        raise BackendUnavailableError(
            "the native tensorrt backend is not part of this edge-sdk release; use "
            "backend='ort-tensorrt' (onnxruntime's TensorRT execution provider, "
            "pip install 'edge-sdk[gpu]')"
        )

    def activate(self) -> None:
        self.check_available()

    def deactivate(self) -> None:
        return None

    def allocate(self, max_length: int) -> None:
        self.check_available()

    def reset(self) -> None:
        return None

    def forward(self, token_ids: np.ndarray) -> np.ndarray:
        raise BackendUnavailableError("the native tensorrt backend is not available")

    @property
    def cache_length(self) -> int:
        return 0

    @property
    def cache_bytes(self) -> int:
        return 0
