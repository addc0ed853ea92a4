"""What the user names (``model.pt``, Hugging Face folder or hub id, GGUF file) -> a
:class:`ModelSource`: config, tokenizer and weights read on demand (nothing loaded whole)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edge_sdk.chat_template import ChatTemplate
from edge_sdk.checkpoint import ACCEPTED_FORMATS
from edge_sdk.cli_support import Progress
from edge_sdk.config import ModelConfig
from edge_sdk.errors import ConfigError, ExportError, UnsupportedModelError
from edge_sdk.exporters.weights import StateDictWeights, WeightSource

if TYPE_CHECKING:
    from edge_sdk.exporters.checkpoint import LoadedModel

__all__ = ["ModelSource", "check_free_space", "check_weights", "open_hub_model", "open_model"]

_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")


@dataclass
class ModelSource:
    """A model to export, not yet loaded: its config, weights read on demand, tokenizer JSON,
    where it came from (``source``), a short ``name``, its chat template when it has one, and
    what the user should know about what was read (``notes``: a vision tower left out)."""

    config: ModelConfig
    weights: WeightSource
    tokenizer_json: str
    source: str
    name: str
    chat_template: ChatTemplate | None = None
    notes: tuple[str, ...] = ()

    def close(self) -> None:
        """Release the weights' file mappings."""
        self.weights.close()

    @classmethod
    def from_loaded(cls, loaded: LoadedModel) -> ModelSource:
        """A source over an in-memory model's ``state_dict()`` (no copy until a tensor is read)."""
        config = loaded.config
        weights = StateDictWeights(
            loaded.model.state_dict(), tie_word_embeddings=config.tie_word_embeddings
        )
        return cls(
            config, weights, loaded.tokenizer_json, loaded.source, loaded.name, loaded.chat_template
        )


def open_model(
    source: str | os.PathLike[str], revision: str | None = None, progress: Progress | None = None
) -> ModelSource:
    """Open a ``model.pt``, a Hugging Face folder (or its ``config.json``), a GGUF file or a hub id
    without loading its weights (see :func:`edge_sdk.exporters.load_model` for what is accepted).

    A ``source`` that is no local path but reads as ``owner/name`` is a Hugging Face hub id,
    fetched at ``revision`` into the hub's cache first (see :mod:`edge_sdk.exporters.hub`).
    """
    from edge_sdk.exporters.hub import is_hub_id

    path = Path(source)
    if not path.exists() and is_hub_id(os.fspath(source)):
        return open_hub_model(os.fspath(source), revision, progress)
    if revision is not None:
        raise ConfigError(
            f"a revision ({revision}) applies to a Hugging Face hub id (owner/name), "
            f"not to the local path {path}"
        )
    if not path.exists():
        raise ConfigError(f"{path} does not exist. Give {ACCEPTED_FORMATS}")
    if path.is_dir() or path.name == "config.json":
        from edge_sdk.exporters.hf import open_hf_folder

        return open_hf_folder(path if path.is_dir() else path.parent)
    if path.suffix in _CHECKPOINT_SUFFIXES:
        from edge_sdk.exporters.checkpoint import open_checkpoint

        return open_checkpoint(path)
    if path.suffix.lower() == ".gguf":
        from edge_sdk.exporters.gguf.model import open_gguf

        return open_gguf(path)
    raise UnsupportedModelError(f"{path} is not a model this SDK reads. Give {ACCEPTED_FORMATS}")


def open_hub_model(
    repo_id: str, revision: str | None = None, progress: Progress | None = None
) -> ModelSource:
    """Resolve a hub id into the local cache and open it as a Hugging Face folder; its source is
    recorded as ``hf://owner/name@<commit>``, its name as ``name``."""
    from edge_sdk.exporters.hf import open_hf_folder
    from edge_sdk.exporters.hub import resolve_hub_model

    folder = resolve_hub_model(repo_id, revision, progress)
    opened = open_hf_folder(folder)
    opened.source = f"hf://{repo_id}@{folder.name}"
    opened.name = repo_id.split("/")[1]
    return opened


def check_weights(
    config: ModelConfig,
    weights: WeightSource,
    expected: Mapping[str, tuple[int, ...]],
    where: str,
) -> None:
    """Check that ``weights`` holds exactly the tensors of ``expected`` (name -> shape) before an
    export reads any of them; the first mismatch is an :class:`~edge_sdk.ExportError` naming the
    tensor and ``where``. Stored rotary frequencies (``*rotary_emb.inv_freq``) are ignored, and so
    is a missing ``lm_head.weight`` when ``config`` ties it to the embedding."""
    names = weights.names()
    for name, shape in expected.items():
        if name not in names:
            if config.tie_word_embeddings and name == "lm_head.weight":
                continue
            raise ExportError(f"{name}: missing in {where}")
        found = weights.shape(name)
        if tuple(found) != tuple(shape):
            raise ExportError(
                f"{name} in {where} has shape {_shape(found)}, the config needs {_shape(shape)}"
            )
    for name in sorted(names - set(expected)):
        if not name.endswith("rotary_emb.inv_freq"):
            raise ExportError(
                f"{name}: unexpected in {where} (the config has no such weight; "
                f"is the config.json the weights' own?)"
            )


def check_free_space(folder: Path, needed_bytes: int, what: str) -> None:
    """Raise :class:`~edge_sdk.ExportError` unless the disk that will hold ``folder`` (its nearest
    existing ancestor) has ``needed_bytes`` free for ``what``."""
    existing = Path(os.path.abspath(folder))
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        free = shutil.disk_usage(existing).free
    except OSError as exc:
        raise ExportError(f"cannot read the free space of {existing}: {exc}") from exc
    if free < needed_bytes:
        raise ExportError(
            f"not enough free space in {folder} for {what}: needs about {_bytes(needed_bytes)} "
            f"({needed_bytes} bytes), {_bytes(free)} free; free some space or write elsewhere "
            "with -o"
        )


def _shape(shape: tuple[int, ...]) -> str:
    return f"({', '.join(str(n) for n in shape)})"


def _bytes(count: int) -> str:
    return f"{count / 1e9:.1f} GB" if count >= 1e9 else f"{count / 1e6:.1f} MB"
