"""The SDK's exceptions: one root, a small tree.

::

    EdgeError                      every error the SDK raises on purpose
    ├── ConfigError                a model configuration that is invalid or unreadable
    ├── UnsupportedModelError      an architecture or checkpoint format the SDK does not handle
    ├── BundleError                a bundle missing, incomplete, corrupted or of unknown format
    ├── ExportError                export, quantization or accuracy verification failed
    │   └── AccuracyError          the quantized model fell below the accuracy threshold
    ├── BackendUnavailableError    a backend or optional dependency is not installed / usable here
    ├── GenerationError            bad generation input (prompt too long, bad options)
    │   └── ContextFullError       the prompt or conversation does not fit the context
    ├── PowerError                 power sensors and power modes
    └── DeployError                a deployment that cannot be rendered as asked (does not fit, ...)

Errors from torch, onnx, onnxruntime, TensorRT, subprocesses and sysfs are translated at the
boundary (``raise ... from exc``) into one of these, with a message that says what to do.
"""

from __future__ import annotations

__all__ = [
    "AccuracyError",
    "BackendUnavailableError",
    "BundleError",
    "ConfigError",
    "ContextFullError",
    "DeployError",
    "EdgeError",
    "ExportError",
    "GenerationError",
    "PowerError",
    "UnsupportedModelError",
]


class EdgeError(Exception):
    """Root of every error the SDK raises on purpose; CLIs print it as one line."""


class ConfigError(EdgeError):
    """A model configuration is invalid or cannot be read."""


class UnsupportedModelError(EdgeError):
    """The model's architecture or checkpoint format is not supported."""


class BundleError(EdgeError):
    """A bundle is missing, incomplete, corrupted or of an unknown format version."""


class ExportError(EdgeError):
    """Exporting, quantizing or verifying a model failed."""


class AccuracyError(ExportError):
    """A quantized export fell below the accuracy threshold (use ``--force`` to keep it anyway)."""


class BackendUnavailableError(EdgeError):
    """A backend or optional dependency is not installed or not usable on this machine."""


class GenerationError(EdgeError):
    """Generation was asked for something it cannot do (prompt too long, invalid options)."""


class ContextFullError(GenerationError):
    """The prompt (or the conversation with its next message) needs ``needed`` tokens, but the
    context holds ``limit``: shorten it, start a new conversation or load a larger context."""

    def __init__(self, message: str, needed: int, limit: int) -> None:
        super().__init__(message)
        self.needed = needed
        self.limit = limit

    def __reduce__(self) -> tuple[type[ContextFullError], tuple[str, int, int]]:
        return type(self), (str(self), self.needed, self.limit)


class PowerError(EdgeError):
    """Reading power sensors or changing power modes failed."""


class DeployError(EdgeError):
    """A deployment cannot be rendered as asked: it does not fit the module, or options conflict."""
