"""Lazy imports of optional dependencies, with an error that names the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from edge_sdk.errors import BackendUnavailableError

# module name -> (what provides it, how to install it)
_PROVIDERS: dict[str, str] = {
    "torch": "pip install 'edge-sdk[export]'",
    "onnx": "pip install 'edge-sdk[export]'",
    "onnxscript": "pip install 'edge-sdk[export]'",
    "safetensors": "pip install 'edge-sdk[export]'",
    "onnxruntime": "pip install 'edge-sdk[cpu]' (or 'edge-sdk[gpu]' on a CUDA machine)",
    "tensorrt": "JetPack's TensorRT Python bindings (sudo apt install python3-libnvinfer), "
    "or pip install 'edge-sdk[tensorrt]' on a desktop GPU",
    "pycuda": "pip install pycuda (on Jetson it builds against JetPack's CUDA)",
    "jtop": "pip install 'edge-sdk[jetson]' and run: sudo jtop --install-service",
    "pynvml": "pip install nvidia-ml-py",
    "matplotlib": "pip install 'edge-sdk[plot]'",
    "transformers": "pip install 'edge-sdk[test]'",
    "starlette": "pip install 'edge-sdk[serve]'",
    "uvicorn": "pip install 'edge-sdk[serve]'",
    "prometheus_client": "pip install 'edge-sdk[serve]'",
    "yaml": "pip install 'edge-sdk[deploy]'",
}


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise :class:`BackendUnavailableError` saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        how = _PROVIDERS.get(top, f"pip install {top}")
        raise BackendUnavailableError(
            f"{purpose} needs the Python package '{top}', which is not importable here "
            f"({exc}). Install it: {how}"
        ) from exc
