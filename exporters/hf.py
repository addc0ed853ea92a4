"""Load a Hugging Face model folder (config.json + *.safetensors + tokenizer.json)."""

from __future__ import annotations

import json
from pathlib import Path

from edge_sdk.chat_template import read_hf_chat_template
from edge_sdk.config import SUPPORTED_ARCHITECTURES, TEXT_DECODERS, ModelConfig
from edge_sdk.errors import UnsupportedModelError
from edge_sdk.exporters.checkpoint import LoadedModel, load_source
from edge_sdk.exporters.sources import ModelSource
from edge_sdk.exporters.weights import SafetensorsWeights, TextPartWeights, WeightSource

__all__ = ["load_hf_folder", "open_hf_folder"]


def load_hf_folder(folder: Path) -> LoadedModel:
    """Read a supported Hugging Face folder with safetensors (never pickle)."""
    return load_source(open_hf_folder(folder))


def open_hf_folder(folder: Path) -> ModelSource:
    """Open a supported Hugging Face folder: config, tokenizer and chat template read, the
    safetensors weights memory-mapped (a truncated file is refused here, naming the tensor)."""
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise UnsupportedModelError(
            f"{folder} has no config.json; a Hugging Face model folder needs config.json, "
            f"*.safetensors and tokenizer.json (supported: {', '.join(SUPPORTED_ARCHITECTURES)})"
        )
    config = _with_generation_eos(ModelConfig.from_hf_file(config_path), folder)
    weight_files = sorted(folder.glob("*.safetensors"))
    if not weight_files:
        hint = (
            " (only PyTorch .bin weights found: re-save with safe_serialization=True)"
            if any(folder.glob("*.bin"))
            else ""
        )
        raise UnsupportedModelError(f"{folder} has no *.safetensors weights{hint}")
    tokenizer_path = folder / "tokenizer.json"
    if not tokenizer_path.is_file():
        raise UnsupportedModelError(
            f"{folder} has no tokenizer.json (the fast-tokenizer file); save the tokenizer with "
            "transformers' AutoTokenizer.save_pretrained, which writes it"
        )
    tokenizer_json = tokenizer_path.read_text(encoding="utf-8")
    chat_template = read_hf_chat_template(folder)
    tied = config.tie_word_embeddings
    weights: WeightSource = SafetensorsWeights(weight_files, tie_word_embeddings=tied)
    notes: tuple[str, ...] = ()
    architecture = _architecture(config_path)
    if architecture in TEXT_DECODERS:
        text = TextPartWeights(weights, tie_word_embeddings=tied)
        weights = text
        notes = (
            f"{architecture} holds a vision tower too: exporting its text decoder only "
            f"({TEXT_DECODERS[architecture]}; {text.left_out} vision tensors left out)",
        )
    return ModelSource(
        config, weights, tokenizer_json, str(folder), folder.name, chat_template, notes
    )


def _architecture(config_path: Path) -> str | None:
    """``architectures[0]`` of a config.json already read once (so it parses)."""
    archs = json.loads(config_path.read_text(encoding="utf-8")).get("architectures") or [None]
    return str(archs[0]) if archs[0] else None


def _with_generation_eos(config: ModelConfig, folder: Path) -> ModelConfig:
    """Add EOS ids from generation_config.json (chat models stop on several ids)."""
    path = folder / "generation_config.json"
    if not path.is_file():
        return config
    try:
        eos = json.loads(path.read_text(encoding="utf-8")).get("eos_token_id")
    except (OSError, ValueError):
        return config
    extra = eos if isinstance(eos, list) else ([] if eos is None else [eos])
    merged = tuple(dict.fromkeys([*config.eos_token_ids, *(int(i) for i in extra)]))
    if merged == config.eos_token_ids:
        return config
    data = config.to_dict()
    data["eos_token_ids"] = list(merged)
    return ModelConfig.from_dict(data)
