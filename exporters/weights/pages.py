"""Keep a memory-mapped checkpoint out of the exporter's resident memory."""

from __future__ import annotations

import mmap
from typing import Any

import numpy as np

__all__ = ["drop_array_pages", "drop_pages"]


def drop_pages(buffer: mmap.mmap, begin: int, end: int) -> None:
    """Unmap the pages of bytes ``begin:end`` just copied out, so the file does not count in
    this process's resident memory (the kernel reads them again if asked: nothing is lost)."""
    start = begin // mmap.PAGESIZE * mmap.PAGESIZE
    if hasattr(mmap, "MADV_DONTNEED") and end > start:
        buffer.madvise(mmap.MADV_DONTNEED, start, end - start)


def drop_array_pages(array: Any, begin: int, length: int) -> None:
    """:func:`drop_pages` for a view into an ``np.memmap`` (as ``gguf.GGUFReader`` gives)."""
    base = array
    while base is not None and not isinstance(base, np.memmap):
        base = getattr(base, "base", None)
    buffer = getattr(base, "_mmap", None)
    if isinstance(buffer, mmap.mmap):
        drop_pages(buffer, begin, begin + length)
