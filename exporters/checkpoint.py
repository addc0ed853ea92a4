"""Write and load the SDK's ``model.pt`` checkpoint (format in :mod:`edge_sdk.checkpoint`)."""

from __future__ import annotations

import os
import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from edge_sdk.chat_template import ChatTemplate
from edge_sdk.checkpoint import (
    ACCEPTED_FORMATS,
    CHECKPOINT_FORMAT,
    CHECKPOINT_FORMAT_VERSION,
    check_checkpoint_dict,
)
from edge_sdk.config import ModelConfig
from edge_sdk.errors import ExportError, UnsupportedModelError
from edge_sdk.exporters.model import WHOLE_MODEL_FAMILIES, LiteForCausalLM
from edge_sdk.exporters.sources import ModelSource
from edge_sdk.exporters.weights import StateDictWeights

__all__ = ["LoadedModel", "load_checkpoint", "load_source", "open_checkpoint", "save_checkpoint"]


class LoadedModel:
    """A model ready to export: the PyTorch module, its tokenizer JSON, where it came from, and
    its chat template when it has one."""

    def __init__(
        self,
        model: LiteForCausalLM,
        tokenizer_json: str,
        source: str,
        name: str,
        chat_template: ChatTemplate | None = None,
    ) -> None:
        self.model = model
        self.tokenizer_json = tokenizer_json
        self.source = source
        self.name = name
        self.chat_template = chat_template

    @property
    def config(self) -> ModelConfig:
        """The model's configuration."""
        return self.model.config


def save_checkpoint(
    model: LiteForCausalLM,
    tokenizer_json: str,
    path: str | os.PathLike[str],
    dtype: torch.dtype = torch.float32,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` and its tokenizer as an edge-sdk ``model.pt`` (atomically)."""
    path = Path(path)
    state = {
        name: tensor.detach().to(dtype).contiguous().clone()
        for name, tensor in model.state_dict().items()
        if not (model.config.tie_word_embeddings and name == "lm_head.weight")
    }
    data = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "config": model.config.to_dict(),
        "tokenizer": tokenizer_json,
        "state_dict": state,
        "metadata": dict(metadata or {}),
    }
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(data, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | os.PathLike[str]) -> LoadedModel:
    """Load a ``model.pt`` with ``torch.load(weights_only=True)``: no code from the file runs."""
    return load_source(open_checkpoint(path))


def open_checkpoint(path: str | os.PathLike[str]) -> ModelSource:
    """Open a ``model.pt`` with ``torch.load(weights_only=True, mmap=True)``: no code from the file
    runs, and the tensors stay on disk until they are read."""
    path = Path(path)
    try:
        with warnings.catch_warnings():  # torch's notes on pickle protocols: its error says more
            warnings.simplefilter("ignore", UserWarning)
            # mmap needs torch.save's zip format; an older (legacy) file is read whole
            data = torch.load(
                path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path)
            )
    except FileNotFoundError:
        raise
    except Exception as exc:  # garbage makes the unpickler fail in many ways (IndexError too)
        raise UnsupportedModelError(
            f"{path} cannot be loaded safely as a checkpoint: {_load_failure(path, exc)}. A "
            f"pickled module or arbitrary object is never unpickled. Accepted: {ACCEPTED_FORMATS}"
        ) from exc
    check_checkpoint_dict(data, path)
    config = ModelConfig.from_dict(data["config"])
    weights = StateDictWeights(data["state_dict"], tie_word_embeddings=config.tie_word_embeddings)
    name = str(data.get("metadata", {}).get("name") or path.stem)
    return ModelSource(config, weights, str(data["tokenizer"]), str(path), name)


def _load_failure(path: Path, exc: BaseException) -> str:
    """Why ``torch.load(weights_only=True)`` refused ``path``, whole, in our words (torch's
    message is a paragraph about its own defaults)."""
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as file:
            head = file.read(2)
        if head == b"PK":
            return "it is a zip file cut short or corrupt (an incomplete copy?)"
        if head[:1] != b"\x80":
            return (
                "it is neither torch.save's zip format nor a pickle (a corrupt file, or not a "
                "PyTorch file at all)"
            )
        if not isinstance(exc, pickle.UnpicklingError):
            return f"the pickle is cut short or corrupt ({type(exc).__name__})"
        return (
            "it is a plain pickle, not a file written by torch.save (save the model with "
            "edge_sdk.exporters.save_checkpoint)"
        )
    found = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\n\n|$)", str(exc), re.DOTALL)
    if found:
        reason = " ".join(found.group(1).split()).split(". ")[0].rstrip(".")
        return f"it holds what the safe loader refuses ({reason})"
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def load_source(source: ModelSource) -> LoadedModel:
    """Read every weight of ``source`` into a float32 :class:`LoadedModel` (eval mode), then close
    the source."""
    try:
        weights = source.weights
        state = {name: torch.from_numpy(weights.get(name)) for name in sorted(weights.names())}
    finally:
        source.close()
    model = build_model(source.config, state, source.source)
    return LoadedModel(
        model, source.tokenizer_json, source.source, source.name, source.chat_template
    )


def build_model(
    config: ModelConfig, state_dict: dict[str, torch.Tensor], source: str
) -> LiteForCausalLM:
    """A float32 :class:`LiteForCausalLM` in eval mode holding ``state_dict``."""
    if config.architecture not in WHOLE_MODEL_FAMILIES:
        raise UnsupportedModelError(
            f"{source}: the whole-model PyTorch reference (load_model, and the fp16 and w8a8 "
            f"exports that trace it) covers {', '.join(WHOLE_MODEL_FAMILIES)}, not "
            f"{config.architecture}; export it with fp32, int8 or int4"
        )
    model = LiteForCausalLM(config)
    state = {k: v.float() for k, v in state_dict.items()}
    own = model.state_dict()
    wrong = [
        f"{k} {tuple(v.shape)} != {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and own[k].shape != v.shape
    ]
    if wrong:
        raise ExportError(
            f"{source}: weight shapes do not match the config: {'; '.join(wrong[:3])}"
        )
    missing, unexpected = model.load_state_dict(state, strict=False)
    if config.tie_word_embeddings:
        missing = [m for m in missing if m != "lm_head.weight"]
    # Rotary frequencies are derived from the config; checkpoints may carry a copy.
    unexpected = [u for u in unexpected if not u.endswith("rotary_emb.inv_freq")]
    if missing or unexpected:
        raise ExportError(
            f"{source}: weights do not match the config (missing: "
            f"{', '.join(missing[:5]) or 'none'}; "
            f"unexpected: {', '.join(unexpected[:5]) or 'none'})"
        )
    return model.eval()
