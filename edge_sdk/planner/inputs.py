"""Resolve the MODEL argument: a bundle, a Hugging Face config.json (or a folder with one),
the SDK's ``model.pt`` checkpoint, a llama.cpp GGUF file (its metadata), or a preset name."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from edge_sdk.bundle import MANIFEST_NAME, load_bundle
from edge_sdk.config import ModelConfig
from edge_sdk.errors import ConfigError
from edge_sdk.gguf_header import read_gguf_header
from edge_sdk.planner.presets import PRESETS, get_preset

__all__ = ["ModelSource", "resolve_model"]

_CHECKPOINT_SUFFIXES = (".pt", ".pth")


@dataclass(frozen=True)
class ModelSource:
    """A model's configuration and where it came from."""

    name: str
    kind: str  # "bundle", "hf-config", "checkpoint", "gguf" or "preset"
    config: ModelConfig
    precision: str | None = None  # a bundle's precision
    bundle_model_bytes: int | None = None  # a bundle's graph (+ external data) on disk
    group_size: int | None = None  # a bundle's int8/int4 group size (int8 0: per channel)
    max_sequence_length: int | None = None  # a bundle's context limit (manifest graph)

    @property
    def context_limit(self) -> int:
        """Most tokens a sequence may hold: a bundle's ``max_sequence_length``, otherwise the
        model's ``max_position_embeddings``."""
        if self.max_sequence_length is not None:
            return self.max_sequence_length
        return self.config.max_position_embeddings

    @property
    def context_limit_source(self) -> str:
        """``"bundle"`` or ``"model"``: where :attr:`context_limit` comes from."""
        return "bundle" if self.max_sequence_length is not None else "model"


def _from_bundle(root: Path) -> ModelSource:
    bundle = load_bundle(root, verify=False)
    # the graph whose layout the planner's precision describes: the fused CPU graph when the
    # bundle has one (an int8 bundle's blocks live there; model.onnx is per output channel)
    fused = (bundle.manifest.get("onnxruntime") or {}).get("fused_graph") or {}
    graph = str(fused.get("file") or bundle.manifest["graph"]["file"])
    model_bytes = sum(
        int(record["size"])
        for name, record in bundle.manifest["files"].items()
        if name.startswith(graph)  # the graph and its external data, e.g. model.onnx.data
    )
    quant = bundle.manifest["precision"].get("config") or {}
    group = quant.get("group_size")
    if bundle.precision == "int8" and group is None:  # bundles from before int8 blocks
        group = 0
    return ModelSource(
        root.name or str(root),
        "bundle",
        bundle.config,
        bundle.precision,
        model_bytes,
        group,
        bundle.max_sequence_length,
    )


def _from_checkpoint(path: Path) -> ModelSource:
    try:
        from edge_sdk.checkpoint import read_checkpoint_config
    except ImportError as exc:
        raise ConfigError(
            f"{path}: reading model.pt checkpoints needs edge_sdk.checkpoint, which this "
            "installation lacks; pass the model's config.json or a bundle instead"
        ) from exc
    return ModelSource(path.stem, "checkpoint", read_checkpoint_config(path))


def _is_manifest(path: Path) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "format" in data and "files" in data


def resolve_model(model: str) -> ModelSource:
    """The configuration of ``model`` (path or preset name); unknown names list the presets."""
    path = Path(model)
    if path.is_dir():
        if (path / MANIFEST_NAME).is_file():
            return _from_bundle(path)
        if (path / "config.json").is_file():
            return ModelSource(
                path.name, "hf-config", ModelConfig.from_hf_file(path / "config.json")
            )
        raise ConfigError(f"{path} holds neither {MANIFEST_NAME} (a bundle) nor config.json")
    if path.is_file():
        if path.suffix in _CHECKPOINT_SUFFIXES:
            return _from_checkpoint(path)
        if path.suffix.lower() == ".gguf":  # the header only: the tensors are never read
            return ModelSource(path.stem, "gguf", read_gguf_header(path).config())
        if path.name == MANIFEST_NAME and _is_manifest(path):
            return _from_bundle(path.parent)
        name = path.parent.name if path.name == "config.json" and path.parent.name else path.stem
        return ModelSource(name, "hf-config", ModelConfig.from_hf_file(path))
    if model.strip().lower() in PRESETS:
        key = model.strip().lower()
        return ModelSource(key, "preset", get_preset(key))
    if "/" in model or path.suffix.lower() in (".json", ".gguf", *_CHECKPOINT_SUFFIXES):
        raise ConfigError(f"{model} does not exist")
    raise ConfigError(
        f"{model!r} is neither a file, a directory nor a preset; valid presets: "
        f"{', '.join(PRESETS)}"
    )
