"""edge-sdk: deploy small ("Lite") language models on NVIDIA Jetson Orin.

The core (this package) holds what every part shares and needs neither torch nor onnxruntime:
model configuration, the bundle and its manifest, the tokenizer wrapper, the error tree and the
planner (:func:`plan`: will a model fit a Jetson module, how fast, at what energy cost).
Subpackages: :mod:`edge_sdk.exporters` (torch -> ONNX/INT8 bundle), :mod:`edge_sdk.runtime`
(stream tokens from a bundle), :mod:`edge_sdk.power` (power modes, sensors, efficiency),
:mod:`edge_sdk.serve` (the OpenAI-compatible server), :mod:`edge_sdk.deploy` (container image and
Kubernetes manifests for a fleet).
"""

from __future__ import annotations

from edge_sdk.bundle import (
    BUNDLE_FORMAT,
    BUNDLE_FORMAT_VERSION,
    Bundle,
    BundleWriter,
    load_bundle,
)
from edge_sdk.checkpoint import read_checkpoint_config, read_checkpoint_metadata
from edge_sdk.config import SUPPORTED_ARCHITECTURES, ModelConfig, RopeScaling
from edge_sdk.errors import (
    AccuracyError,
    BackendUnavailableError,
    BundleError,
    ConfigError,
    ContextFullError,
    DeployError,
    EdgeError,
    ExportError,
    GenerationError,
    PowerError,
    UnsupportedModelError,
)
from edge_sdk.planner import (
    DEVICES,
    PRESETS,
    CostInputs,
    Device,
    Plan,
    get_device,
    get_preset,
    plan,
    resolve_model,
)
from edge_sdk.tokenizer import Tokenizer

__version__ = "0.1.0"

__all__ = [
    "BUNDLE_FORMAT",
    "BUNDLE_FORMAT_VERSION",
    "DEVICES",
    "PRESETS",
    "SUPPORTED_ARCHITECTURES",
    "AccuracyError",
    "BackendUnavailableError",
    "Bundle",
    "BundleError",
    "BundleWriter",
    "ConfigError",
    "ContextFullError",
    "CostInputs",
    "DeployError",
    "Device",
    "EdgeError",
    "ExportError",
    "GenerationError",
    "ModelConfig",
    "Plan",
    "PowerError",
    "RopeScaling",
    "Tokenizer",
    "UnsupportedModelError",
    "__version__",
    "get_device",
    "get_preset",
    "load_bundle",
    "plan",
    "read_checkpoint_config",
    "read_checkpoint_metadata",
    "resolve_model",
]
