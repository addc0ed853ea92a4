"""Safetensors files read tensor by tensor through a memory map (the header parsed here).

A file is ``<u64 little-endian header length><JSON header><data>``; the header maps each tensor
name to ``{"dtype", "shape", "data_offsets": [begin, end]}``, offsets relative to the data.
Every tensor's bytes are checked to lie inside its file when the file is opened, so a truncated
download fails at once, naming the tensor, instead of part way through an export.
"""

from __future__ import annotations

import json
import math
import mmap
import struct
import sys
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from edge_sdk.errors import ConfigError, UnsupportedModelError
from edge_sdk.exporters.weights.pages import drop_pages

__all__ = ["SafetensorsWeights"]

# safetensors dtype -> numpy dtype of the stored bytes (little-endian); BF16 is read as uint16.
_DTYPES: dict[str, np.dtype[Any]] = {
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),
    "F64": np.dtype("<f8"),
}
_ITEM_SIZES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2}
_ITEM_SIZES |= {"I32": 4, "U32": 4, "I64": 8, "U64": 8}
_ITEM_SIZES |= {name: dtype.itemsize for name, dtype in _DTYPES.items()}
_LENGTH = struct.Struct("<Q")


class _Entry(NamedTuple):
    file: int  # index into the open maps
    dtype: str
    shape: tuple[int, ...]
    begin: int  # absolute offsets in the file
    end: int


class SafetensorsWeights:
    """The tensors of one or more ``*.safetensors`` files (a sharded checkpoint), memory-mapped.

    ``tie_word_embeddings``: the model reuses its embedding as LM head, so ``lm_head.weight`` is
    not listed even when a file stores a copy (consumers read ``model.embed_tokens.weight``).
    """

    def __init__(self, files: list[Path], *, tie_word_embeddings: bool = False) -> None:
        self._paths = [Path(f) for f in files]
        self._maps: list[mmap.mmap | None] = []
        self._entries: dict[str, _Entry] = {}
        try:
            for index, path in enumerate(self._paths):
                self._open(index, path)
        except BaseException:
            self.close()
            raise
        if tie_word_embeddings:
            self._entries.pop("lm_head.weight", None)

    def names(self) -> frozenset[str]:
        """Every tensor name in the files."""
        return frozenset(self._entries)

    def shape(self, name: str) -> tuple[int, ...]:
        """The shape recorded in the header."""
        return self._entry(name).shape

    def get(self, name: str) -> np.ndarray:
        """``name`` as a fresh float32 C-contiguous array (BF16 and F16 widened exactly)."""
        entry = self._entry(name)
        if entry.dtype not in _DTYPES:
            raise UnsupportedModelError(
                f"tensor {name} in {self._paths[entry.file]} is stored as {entry.dtype}; "
                f"weights must be one of {', '.join(_DTYPES)}"
            )
        buffer = self._maps[entry.file]
        if buffer is None:
            raise ValueError(f"{self._paths[entry.file]} is closed")
        stored = _DTYPES[entry.dtype]
        count = (entry.end - entry.begin) // stored.itemsize
        raw = np.frombuffer(buffer, dtype=stored, count=count, offset=entry.begin)
        if entry.dtype == "BF16" and sys.byteorder == "little":
            # bf16 is the high half of a float32: one strided copy into zeros, no temporaries
            halves = np.zeros(2 * count, dtype=np.uint16)
            halves[1::2] = raw
            values = halves.view(np.float32)
        elif entry.dtype == "BF16":
            values = (raw.astype(np.uint32) << 16).view(np.float32)
        else:
            values = raw.astype(np.float32)  # always a copy: nothing points into the map
        del raw
        drop_pages(buffer, entry.begin, entry.end)
        return values.reshape(entry.shape)

    def close(self) -> None:
        """Unmap the files (arrays returned by :meth:`get` are copies and stay valid)."""
        for index, buffer in enumerate(self._maps):
            if buffer is not None:
                buffer.close()
                self._maps[index] = None

    def _entry(self, name: str) -> _Entry:
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(f"no tensor {name!r} in {_listing(self._paths)}") from None

    def _open(self, index: int, path: Path) -> None:
        try:
            with path.open("rb") as handle:
                size = path.stat().st_size
                head = handle.read(_LENGTH.size)
                if len(head) < _LENGTH.size:
                    raise UnsupportedModelError(
                        f"{path} is {size} bytes, too short to be a safetensors file: "
                        "the download is incomplete; download it again"
                    )
                (length,) = _LENGTH.unpack(head)
                if length > size - _LENGTH.size:
                    raise UnsupportedModelError(
                        f"{path}: the safetensors header says it is {length} bytes, the file has "
                        f"{size}: not a safetensors file, or the download is incomplete; "
                        "download it again"
                    )
                header = _parse_header(handle.read(length), path)
                entries = _entries(header, index, _LENGTH.size + length, size, path)
                buffer = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc}") from exc
        self._maps.append(buffer)
        for name, entry in entries.items():
            if name in self._entries:
                other = self._paths[self._entries[name].file]
                raise UnsupportedModelError(
                    f"tensor {name} is stored twice, in {other} and in {path}: "
                    "keep one copy of the checkpoint's files in the folder"
                )
            self._entries[name] = entry


def _parse_header(text: bytes, path: Path) -> dict[str, Any]:
    try:
        header = json.loads(text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise UnsupportedModelError(
            f"{path} is not a safetensors file (its header is not JSON: {exc}); "
            "it is corrupt or of another format, download or save it again"
        ) from exc
    if not isinstance(header, dict):
        raise UnsupportedModelError(f"{path}: the safetensors header is not a JSON object")
    return header


def _entries(
    header: dict[str, Any], index: int, data_start: int, size: int, path: Path
) -> dict[str, _Entry]:
    """Validate each record of ``header`` (metadata skipped) against a file of ``size`` bytes."""
    entries: dict[str, _Entry] = {}
    for name, record in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype = str(record["dtype"])
            shape = tuple(int(n) for n in record["shape"])
            begin, end = (int(n) for n in record["data_offsets"])
        except (KeyError, TypeError, ValueError) as exc:
            raise UnsupportedModelError(
                f"{path}: the safetensors header entry of tensor {name} is malformed ({exc!r})"
            ) from exc
        item = _ITEM_SIZES.get(dtype)
        if begin < 0 or end < begin or (item and end - begin != math.prod(shape) * item):
            raise UnsupportedModelError(
                f"{path}: tensor {name} has offsets [{begin}, {end}] that do not fit its "
                f"{dtype} shape {shape}: the file is corrupt; download it again"
            )
        entries[name] = _Entry(index, dtype, shape, data_start + begin, data_start + end)
    for name, entry in sorted(entries.items(), key=lambda item: item[1].begin):
        if entry.end > size:  # the first tensor, in file order, that a truncation cut
            raise UnsupportedModelError(
                f"tensor {name} runs past the end of {path} (needs {entry.end} bytes, "
                f"the file has {size}): the download is incomplete; download it again"
            )
    return entries


def _listing(paths: list[Path]) -> str:
    return str(paths[0]) if len(paths) == 1 else f"{len(paths)} files in {paths[0].parent}"
