"""Lazy imports of optional dependencies, with an error that names the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from edge_sdk.errors import BackendUnavailableError

# The distribution name on the package index ("edge-sdk" there is an unrelated project).
DISTRIBUTION = "edge-sdk-orin"


def pip_install(extras: str) -> str:
    """The command that installs ``extras`` (e.g. ``"cpu"``) of this SDK."""
    return f"pip install '{DISTRIBUTION}[{extras}]'"


# module name -> how to install it
_PROVIDERS: dict[str, str] = {
    "torch": pip_install("export"),
    "onnx": f"{pip_install('engine')} (edge-engine), or {pip_install('export')} (edge-export)",
    "onnxscript": pip_install("export"),
    "safetensors": pip_install("export"),
    "onnxruntime": f"{pip_install('cpu')} (or {pip_install('gpu')} on a CUDA machine)",
    "tensorrt": "JetPack's TensorRT Python bindings (sudo apt install python3-libnvinfer), "
    f"or {pip_install('tensorrt')} on a desktop GPU",
    "pycuda": "pip install pycuda (on Jetson it builds against JetPack's CUDA)",
    "jtop": f"{pip_install('jetson')} and run: sudo jtop --install-service",
    "pynvml": "pip install nvidia-ml-py",
    "matplotlib": pip_install("plot"),
    "transformers": pip_install("test"),
    "starlette": pip_install("serve"),
    "uvicorn": pip_install("serve"),
    "prometheus_client": pip_install("serve"),
    "yaml": pip_install("deploy"),
    "llguidance": pip_install("structured"),
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
