"""What the user names (``model.pt``, Hugging Face folder or hub id, GGUF file) -> a
:class:`LoadedModel`."""

from __future__ import annotations

import os
from pathlib import Path

from edge_sdk.cli_support import Progress
from edge_sdk.exporters.checkpoint import LoadedModel, load_source
from edge_sdk.exporters.sources import open_model

__all__ = ["demo_checkpoint_path", "load_model"]


def demo_checkpoint_path() -> Path:
    """The packaged demo model (``model.pt``, about 2 M parameters, trained on generated
    stories)."""
    return Path(__file__).resolve().parent / "demo" / "model.pt"


def load_model(
    source: str | os.PathLike[str], revision: str | None = None, progress: Progress | None = None
) -> LoadedModel:
    """Load a ``model.pt``, a Hugging Face folder or a GGUF file, in float32, eval mode: the whole
    PyTorch model (the reference for tests; an export reads layer by layer, :func:`open_model`).

    A ``source`` that is no local path but reads as ``owner/name`` is a Hugging Face hub id,
    fetched at ``revision`` into the hub's cache first (see :mod:`edge_sdk.exporters.hub`).
    """
    return load_source(open_model(source, revision, progress))
