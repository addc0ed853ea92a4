"""The header of a llama.cpp GGUF file, read with the standard library and numpy: its metadata
(plain Python values) and its tensors' names, shapes, types and offsets; no tensor data.

``edge-plan`` and ``edge-deploy`` plan a GGUF model from this before anything is exported (they
may not import the exporters, nor the ``gguf`` package of the ``export`` extra); the exporters
read the same metadata through it, and only the tensors with ``gguf``. Format:
https://github.com/ggml-org/ggml/blob/master/docs/gguf.md (versions 2 and 3, little-endian).
"""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_sdk.config import ModelConfig
from edge_sdk.errors import ConfigError, UnsupportedModelError
from edge_sdk.gguf_config import ROPE_FREQS, gguf_architecture, gguf_config

__all__ = ["GgufHeader", "GgufTensorInfo", "read_gguf_header"]

_MAGIC = b"GGUF"
_SCALARS = {  # value type -> struct format
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_FLOAT32, _BOOL, _STRING, _ARRAY = 6, 7, 8, 9
_NUMPY = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4", 7: "?"}
_NUMPY |= {10: "<u8", 11: "<i8", 12: "<f8"}
_GGML_F32 = 0


@dataclass(frozen=True)
class GgufTensorInfo:
    """One tensor record: its shape (ggml order, fastest-varying first), ggml type and offset
    from the start of the data section."""

    shape: tuple[int, ...]
    ggml_type: int
    offset: int


@dataclass(frozen=True)
class GgufHeader:
    """A GGUF file's metadata (plain Python values) and tensor records."""

    path: Path
    version: int
    metadata: dict[str, Any]
    tensors: dict[str, GgufTensorInfo]
    data_offset: int  # where the tensor data starts in the file

    def float32_tensor(self, name: str) -> np.ndarray:
        """A small float32 tensor's values (``rope_freqs.weight``), read from the file."""
        info = self.tensors[name]
        if info.ggml_type != _GGML_F32:
            raise UnsupportedModelError(f"{self.path}: {name} is not stored as float32")
        count = int(np.prod(info.shape))
        with open(self.path, "rb") as file:
            file.seek(self.data_offset + info.offset)
            raw = file.read(4 * count)
        if len(raw) != 4 * count:
            raise UnsupportedModelError(
                f"tensor {name} runs past the end of {self.path}: the file is truncated; "
                "download it again"
            )
        values: np.ndarray = np.frombuffer(raw, "<f4").copy()
        return values

    def config(self) -> ModelConfig:
        """The :class:`ModelConfig` the metadata describes (errors name the file)."""
        try:
            gguf_architecture(self.metadata)
        except UnsupportedModelError as exc:
            raise UnsupportedModelError(f"{self.path}: {exc}") from exc
        factors = self.float32_tensor(ROPE_FREQS) if ROPE_FREQS in self.tensors else None
        names = {name for name in self.tensors if name != ROPE_FREQS}
        return gguf_config(self.metadata, names, factors)


class _Cursor:
    def __init__(self, data: Any) -> None:
        self.data = data
        self.at = 0

    def unpack(self, fmt: str) -> Any:
        (value,) = struct.unpack_from(fmt, self.data, self.at)
        self.at += struct.calcsize(fmt)
        return value

    def string(self) -> str:
        size = self.unpack("<Q")
        if self.at + size > len(self.data):
            raise ValueError("a string runs past the end of the file")
        raw = bytes(self.data[self.at : self.at + size])
        self.at += size
        return raw.decode("utf-8")

    def value(self, kind: int) -> Any:
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            return self.array()
        if kind not in _SCALARS:
            raise ValueError(f"unknown metadata value type {kind}")
        value = self.unpack(_SCALARS[kind])
        if kind == _FLOAT32:  # its shortest decimal: 1e-05, not 9.999999747378752e-06
            return float(str(np.float32(value)))
        return value

    def array(self) -> list[Any]:
        kind, count = self.unpack("<I"), self.unpack("<Q")
        if kind == _STRING:
            return [self.string() for _ in range(count)]
        if kind == _ARRAY:  # arrays of arrays: not used by the models read here
            for _ in range(count):
                self.array()
            return []
        if kind not in _NUMPY:
            raise ValueError(f"unknown metadata array type {kind}")
        dtype = np.dtype(_NUMPY[kind])
        end = self.at + dtype.itemsize * count
        if end > len(self.data):
            raise ValueError("an array runs past the end of the file")
        values: list[Any] = np.frombuffer(self.data, dtype, count, self.at).tolist()
        self.at = end
        return values


def read_gguf_header(path: str | os.PathLike[str]) -> GgufHeader:
    """Read ``path``'s metadata and tensor records (no tensor data); one clear error for a file
    that is missing, not GGUF, or cut short."""
    path = Path(path)
    try:
        with open(path, "rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return _parse(path, data)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path} does not exist") from exc
    except (ValueError, OSError, struct.error, UnicodeDecodeError, OverflowError) as exc:
        raise UnsupportedModelError(
            f"{path} cannot be read as a GGUF file ({exc}): it is not GGUF, or it is truncated "
            "or corrupt; download or convert it again"
        ) from exc


def _parse(path: Path, data: Any) -> GgufHeader:
    cursor = _Cursor(data)
    if bytes(data[:4]) != _MAGIC:
        raise ValueError(f"it does not start with {_MAGIC!r}")
    cursor.at = 4
    version = cursor.unpack("<I")
    if version not in (2, 3):
        raise ValueError(f"GGUF version {version} (this reader takes 2 and 3)")
    tensor_count, field_count = cursor.unpack("<Q"), cursor.unpack("<Q")
    metadata: dict[str, Any] = {}
    for _ in range(field_count):
        key = cursor.string()
        metadata[key] = cursor.value(cursor.unpack("<I"))
    tensors: dict[str, GgufTensorInfo] = {}
    for _ in range(tensor_count):
        name = cursor.string()
        dims = cursor.unpack("<I")
        shape = tuple(cursor.unpack("<Q") for _ in range(dims))
        ggml_type, offset = cursor.unpack("<I"), cursor.unpack("<Q")
        tensors[name] = GgufTensorInfo(shape, ggml_type, offset)
    alignment = int(metadata.get("general.alignment", 32)) or 32
    data_offset = -(-cursor.at // alignment) * alignment
    return GgufHeader(path, version, metadata, tensors, data_offset)
