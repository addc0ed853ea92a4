"""Open a llama.cpp GGUF file (Llama, Qwen2, Qwen3, Gemma 3 and Qwen3.5 architectures) as a
:class:`ModelSource`, or load it as a float32 :class:`LoadedModel`.

The metadata becomes a :class:`ModelConfig`, and the tokenizer and chat template are rebuilt from
``tokenizer.*`` (:mod:`.tokenizer`). The tensors are dequantized to float32 with the ``gguf``
library (llama.cpp's own) one at a time, in the Hugging Face names and layout of the reference
model (:mod:`edge_sdk.exporters.weights.gguf_file`). A file whose tensor data runs past its end
is refused when it is opened, naming the first tensor cut.
"""

from __future__ import annotations

import os
import struct
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from edge_sdk._optional import require
from edge_sdk.errors import ConfigError, UnsupportedModelError
from edge_sdk.exporters.checkpoint import LoadedModel, load_source
from edge_sdk.exporters.gguf.tokenizer import gguf_chat_template, gguf_tokenizer_json
from edge_sdk.exporters.sources import ModelSource
from edge_sdk.exporters.weights.gguf_file import ROPE_FREQS, GgufWeights, dequantized, first_line
from edge_sdk.gguf_config import SUPPORTED_GGUF_ARCHITECTURES, gguf_architecture, gguf_config
from edge_sdk.gguf_header import read_gguf_header

__all__ = [
    "SUPPORTED_GGUF_ARCHITECTURES",
    "dequantized",
    "gguf_config",
    "load_gguf",
    "open_gguf",
    "read_gguf",
]


def load_gguf(path: str | os.PathLike[str]) -> LoadedModel:
    """Read a GGUF file of a supported architecture into a float32 model in eval mode."""
    return load_source(open_gguf(path))


def open_gguf(path: str | os.PathLike[str]) -> ModelSource:
    """Open a GGUF file of a supported architecture: config, tokenizer and chat template read from
    its metadata, each tensor dequantized only when it is read."""
    path = Path(path)
    metadata, tensors = read_gguf(path)
    try:
        gguf_architecture(metadata)  # before the tokenizer: an unsupported model says so first
    except UnsupportedModelError as exc:
        raise UnsupportedModelError(f"{path}: {exc}") from exc
    tokenizer_json = gguf_tokenizer_json(metadata)
    rope_freqs = [tensor for tensor in tensors if tensor.name == ROPE_FREQS]
    factors = dequantized(rope_freqs[0]) if rope_freqs else None
    config = gguf_config(metadata, {t.name for t in tensors if t.name != ROPE_FREQS}, factors)
    weights = GgufWeights(_decoder_tensors(tensors, metadata, config.num_layers), config)
    name = str(metadata.get("general.name") or path.stem)
    return ModelSource(
        config, weights, tokenizer_json, str(path), name, gguf_chat_template(metadata)
    )


def _decoder_tensors(tensors: list[Any], metadata: dict[str, Any], num_layers: int) -> list[Any]:
    """The tensors of the decoder: without those of the multi-token-prediction blocks that
    llama.cpp appends to Qwen3.5's (``nextn_predict_layers`` of them, after ``num_layers``)."""
    if not metadata.get(f"{metadata.get('general.architecture')}.nextn_predict_layers"):
        return tensors
    return [tensor for tensor in tensors if _block(tensor.name) < num_layers]


def _block(name: str) -> int:
    """The layer index of a ``blk.{i}.*`` tensor name, -1 for the others."""
    parts = name.split(".", 2)
    return int(parts[1]) if len(parts) > 1 and parts[0] == "blk" and parts[1].isdigit() else -1


def read_gguf(path: Path) -> tuple[dict[str, Any], list[Any]]:
    """The metadata as plain Python values (:func:`edge_sdk.gguf_header.read_gguf_header`,
    what the planner reads too) and the tensor records (``gguf.ReaderTensor``)."""
    require("gguf", "reading GGUF files")
    metadata = read_gguf_header(path).metadata
    try:
        reader = _checked_reader()(str(path))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path} does not exist") from exc
    except (ValueError, OSError, IndexError, KeyError, struct.error, UnicodeDecodeError) as exc:
        raise UnsupportedModelError(
            f"{path} cannot be read as a GGUF file ({first_line(exc)}): it is not GGUF, or it "
            "is truncated or corrupt; download or convert it again"
        ) from exc
    return metadata, list(reader.tensors)


@cache
def _checked_reader() -> type[Any]:
    """``gguf.GGUFReader`` that checks each tensor's bytes lie inside the file before mapping
    them (the plain reader fails on a truncated file with a numpy reshape error)."""
    require("gguf", "reading GGUF files")
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFReader, ReaderField

    class CheckedReader(GGUFReader):
        def __init__(self, path: str) -> None:
            self.path = path
            super().__init__(path)

        def _build_tensors(self, start_offs: int, fields: list[ReaderField]) -> None:
            size = len(self.data)
            try:  # the records' layout is the reader's: if it changed, skip to its own check
                spans = []
                for field in fields:
                    _, raw_name, _, dims, kind, offset = field.parts
                    block, block_bytes = GGML_QUANT_SIZES[GGMLQuantizationType(int(kind[0]))]
                    end = start_offs + int(offset[0]) + int(np.prod(dims)) * block_bytes // block
                    spans.append((end, bytes(raw_name).decode("utf-8")))
            except (ValueError, KeyError, IndexError, TypeError):
                spans = []
            for end, tensor in sorted(spans):
                if end > size:
                    raise UnsupportedModelError(
                        f"tensor {tensor} runs past the end of {self.path} (needs {end} bytes, the "
                        f"file has {size}): the file is truncated, the download is incomplete; "
                        "download it again"
                    )
            super()._build_tensors(start_offs, fields)

    return CheckedReader
