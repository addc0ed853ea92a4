"""The SDK's checkpoint format, ``model.pt``, and reading its metadata without torch.

A ``model.pt`` is ``torch.save`` of one plain dict, loadable with
``torch.load(weights_only=True)``::

    {
      "format": "edge-sdk-checkpoint",
      "format_version": 1,
      "config": {...},            # ModelConfig.to_dict(): plain ints, floats, strings, lists
      "tokenizer": "{...}",       # the tokenizer.json text (Hugging Face `tokenizers`)
      "state_dict": {name: tensor},  # Hugging Face parameter names
                                     # (model.layers.0.self_attn.q_proj.weight, ...)
      "metadata": {"name": ..., ...} # free-form strings and numbers
    }

Writing one: ``edge_sdk.exporters.save_checkpoint(model, tokenizer, path)``.
:func:`read_checkpoint_metadata` reads config and tokenizer through a restricted unpickler that
never builds tensors nor runs code, so the planner can read a checkpoint on a device without torch.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

from edge_sdk.config import ModelConfig
from edge_sdk.errors import ConfigError, UnsupportedModelError

__all__ = [
    "ACCEPTED_FORMATS",
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_FORMAT_VERSION",
    "check_checkpoint_dict",
    "read_checkpoint_config",
    "read_checkpoint_metadata",
]

CHECKPOINT_FORMAT = "edge-sdk-checkpoint"
CHECKPOINT_FORMAT_VERSION = 1
ACCEPTED_FORMATS = (
    "an edge-sdk checkpoint (model.pt written by edge_sdk.exporters.save_checkpoint: a dict with "
    "'format', 'config', 'tokenizer' and 'state_dict'), a Hugging Face model folder "
    "(config.json + *.safetensors + tokenizer.json) of a Llama, Qwen2 or Mistral model, or a "
    "llama.cpp GGUF file (*.gguf) of a Llama or Qwen2 model"
)


def check_checkpoint_dict(data: Any, path: Path) -> None:
    """Raise a clear error unless ``data`` is an edge-sdk checkpoint dict of a known version."""
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise UnsupportedModelError(
            f"{path} is not an edge-sdk checkpoint. Accepted: {ACCEPTED_FORMATS}"
        )
    if data.get("format_version") != CHECKPOINT_FORMAT_VERSION:
        raise UnsupportedModelError(
            f"{path} has checkpoint format version {data.get('format_version')!r}; this edge-sdk "
            f"reads version {CHECKPOINT_FORMAT_VERSION}"
        )
    for key in ("config", "tokenizer", "state_dict"):
        if key not in data:
            raise UnsupportedModelError(f"{path} lacks the checkpoint key {key!r}")


class _Placeholder:
    """Stands in for tensors and storages; never constructs anything from the file."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass


class _MetadataUnpickler(pickle.Unpickler):
    _TORCH_NAMES = frozenset({"_rebuild_tensor_v2", "_rebuild_parameter", "_rebuild_tensor"})

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if module == "torch._utils" and name in self._TORCH_NAMES:
            return _Placeholder
        if module == "torch" and (name.endswith("Storage") or name in ("Size", "device")):
            return _Placeholder
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        return None


def read_checkpoint_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Config, tokenizer and metadata of a ``model.pt``, without torch and without its tensors."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            pickled = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
            if not pickled:
                raise UnsupportedModelError(
                    f"{path} is not a torch.save archive. Accepted: {ACCEPTED_FORMATS}"
                )
            with archive.open(pickled[0]) as handle:
                data = _MetadataUnpickler(handle).load()
    except FileNotFoundError as exc:
        raise ConfigError(f"{path} does not exist") from exc
    except zipfile.BadZipFile as exc:
        raise UnsupportedModelError(
            f"{path} is not a torch.save archive. Accepted: {ACCEPTED_FORMATS}"
        ) from exc
    except (pickle.UnpicklingError, AttributeError, EOFError, TypeError) as exc:
        raise UnsupportedModelError(
            f"{path} holds objects other than an edge-sdk checkpoint ({exc}). Accepted: "
            f"{ACCEPTED_FORMATS}"
        ) from exc
    check_checkpoint_dict(data, path)
    return {
        "config": data["config"],
        "tokenizer": data["tokenizer"],
        "metadata": data.get("metadata", {}),
    }


def read_checkpoint_config(path: str | os.PathLike[str]) -> ModelConfig:
    """The :class:`ModelConfig` stored in a ``model.pt``."""
    return ModelConfig.from_dict(read_checkpoint_metadata(path)["config"])
