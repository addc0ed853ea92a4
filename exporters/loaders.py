"""What the user names (``model.pt``, Hugging Face folder or hub id, GGUF file) -> a
:class:`LoadedModel`."""

from __future__ import annotations

import os
from pathlib import Path

from edge_sdk.checkpoint import ACCEPTED_FORMATS
from edge_sdk.cli_support import Progress
from edge_sdk.errors import ConfigError, UnsupportedModelError
from edge_sdk.exporters.checkpoint import LoadedModel, load_checkpoint
from edge_sdk.exporters.gguf.model import load_gguf
from edge_sdk.exporters.hf import load_hf_folder
from edge_sdk.exporters.hub import is_hub_id, load_hub_model

__all__ = ["demo_checkpoint_path", "load_model"]


def demo_checkpoint_path() -> Path:
    """The packaged demo model (``model.pt``, about 2 M parameters, trained on generated
    stories)."""
    return Path(__file__).resolve().parent / "demo" / "model.pt"


def load_model(
    source: str | os.PathLike[str], revision: str | None = None, progress: Progress | None = None
) -> LoadedModel:
    """Load a ``model.pt``, a Hugging Face folder or a GGUF file, in float32, eval mode.

    A ``source`` that is no local path but reads as ``owner/name`` is a Hugging Face hub id,
    fetched at ``revision`` into the hub's cache first (see :mod:`edge_sdk.exporters.hub`).
    """
    path = Path(source)
    if not path.exists() and is_hub_id(os.fspath(source)):
        return load_hub_model(os.fspath(source), revision, progress)
    if revision is not None:
        raise ConfigError(
            f"a revision ({revision}) applies to a Hugging Face hub id (owner/name), "
            f"not to the local path {path}"
        )
    if not path.exists():
        raise ConfigError(f"{path} does not exist. Give {ACCEPTED_FORMATS}")
    if path.is_dir():
        return load_hf_folder(path)
    if path.name == "config.json":
        return load_hf_folder(path.parent)
    if path.suffix in (".pt", ".pth", ".bin", ".ckpt"):
        return load_checkpoint(path)
    if path.suffix.lower() == ".gguf":
        return load_gguf(path)
    raise UnsupportedModelError(f"{path} is not a model this SDK reads. Give {ACCEPTED_FORMATS}")
