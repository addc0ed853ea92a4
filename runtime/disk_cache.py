"""The runtime's cache on disk: where it is, what it holds, and its size cap (least recently used
entries go first).

::

    <cache dir>/ort/<bundle>-<key>/    optimized CPU graphs (:mod:`edge_sdk.runtime.ort_cache`)
    <cache dir>/trt/<bundle>-<sha>/    onnxruntime TensorRT EP engines and timing cache

The cache dir is ``$EDGE_SDK_CACHE_DIR``, else ``$XDG_CACHE_HOME/edge-sdk``, else
``~/.cache/edge-sdk``. Each entry is a directory whose modification time is its last use: a
session that loads an entry touches it and holds a shared lock on its ``.in-use`` file for as
long as it lives. After a new entry is written, the oldest entries are removed until the cache
is within ``$EDGE_SDK_CACHE_MAX_MB`` (default 2048; 0: no cap), never the entry just written
nor one another session holds. An entry is removed by renaming it to a hidden sibling first, so
a reader finds a whole entry or none. Only ``ort/`` and ``trt/`` entries are managed; other
files in the cache dir (a ``--timing-cache`` kept there) are left alone.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_sdk.errors import ConfigError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; recent use stands in for "in use"
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "DEFAULT_MAX_MB",
    "KINDS",
    "CacheEntry",
    "EntryLease",
    "cache_entries",
    "clear_cache",
    "default_cache_dir",
    "enforce_cap",
    "max_cache_bytes",
    "use_entry",
]

KINDS = ("ort", "trt")
DEFAULT_MAX_MB = 2048
LOCK_FILE = ".in-use"
_STALE_S = 600.0  # a hidden folder this old with no holder is a crashed write or removal
MB = 1_000_000  # sizes and the cap in decimal megabytes, as edge-cache prints them


def default_cache_dir() -> Path:
    """``$EDGE_SDK_CACHE_DIR``, else ``$XDG_CACHE_HOME/edge-sdk``, else ``~/.cache/edge-sdk``."""
    if os.environ.get("EDGE_SDK_CACHE_DIR"):
        return Path(os.environ["EDGE_SDK_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edge-sdk"


def max_cache_bytes() -> int | None:
    """The cap from ``$EDGE_SDK_CACHE_MAX_MB`` (default :data:`DEFAULT_MAX_MB`); None: no cap."""
    text = os.environ.get("EDGE_SDK_CACHE_MAX_MB", "").strip() or str(DEFAULT_MAX_MB)
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < math.inf:
        raise ConfigError(f"EDGE_SDK_CACHE_MAX_MB must be a size in MB (0: no cap), not {text!r}")
    return int(value * MB) if value else None


@dataclass(frozen=True)
class CacheEntry:
    """One cached entry: ``kind`` ("ort" or "trt"), its folder, size and last use."""

    kind: str
    name: str
    path: Path
    size_bytes: int
    last_used: float  # seconds since the epoch
    in_use: bool  # a live session (in any process) holds it

    @property
    def id(self) -> str:
        """``kind/name``, as ``edge-cache`` lists it."""
        return f"{self.kind}/{self.name}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "path": str(self.path),
            "size_bytes": self.size_bytes,
            "last_used": self.last_used,
            "in_use": self.in_use,
        }


class EntryLease:
    """A shared lock on an entry for the life of a session: it is not evicted meanwhile."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._fd: int | None = None
        self._fd = os.open(folder / LOCK_FILE, os.O_RDONLY | os.O_CREAT, 0o644)
        if fcntl is not None:
            fcntl.flock(self._fd, fcntl.LOCK_SH)

    def release(self) -> None:
        """Drop the lock (closing the file releases it)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:
        self.release()


def use_entry(folder: Path) -> EntryLease | None:
    """Hold ``folder`` for a session and mark it used now; None when it cannot be locked."""
    try:
        lease = EntryLease(folder)
    except OSError:  # gone (evicted meanwhile) or read-only
        return None
    with contextlib.suppress(OSError):
        os.utime(folder)
    return lease


def _size(folder: Path) -> int:
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def _held(folder: Path, last_used: float) -> bool:
    """Whether another open lease holds ``folder`` (an absent lock file: no one ever held it)."""
    if fcntl is None:
        return time.time() - last_used < _STALE_S
    try:
        fd = os.open(folder / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def _remove(folder: Path) -> bool:
    """Remove ``folder`` unless a lease holds it: lock, rename aside, then delete."""
    try:
        fd = os.open(folder / LOCK_FILE, os.O_RDONLY | os.O_CREAT, 0o644)
    except OSError:  # gone already, or a read-only cache
        return False
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return False
        aside = folder.with_name(f".removing-{folder.name}-{uuid.uuid4().hex[:8]}")
        try:
            os.rename(folder, aside)
        except OSError:  # another process removed it first, or the cache is read-only
            return False
    finally:
        os.close(fd)
    shutil.rmtree(aside, ignore_errors=True)
    return True


def _scan(cache_dir: Path) -> tuple[list[CacheEntry], list[Path]]:
    """The entries (oldest first), and hidden leftovers of crashed writes or removals."""
    entries: list[CacheEntry] = []
    leftovers: list[Path] = []
    now = time.time()
    for kind in KINDS:
        try:
            children = list((cache_dir / kind).iterdir())
        except OSError:
            continue
        for child in children:
            try:
                stat = child.stat()
            except OSError:
                continue
            if not child.is_dir():
                continue
            if child.name.startswith("."):
                if now - stat.st_mtime > _STALE_S and not _held(child, stat.st_mtime):
                    leftovers.append(child)
                continue
            entries.append(
                CacheEntry(
                    kind,
                    child.name,
                    child,
                    _size(child),
                    stat.st_mtime,
                    _held(child, stat.st_mtime),
                )
            )
    entries.sort(key=lambda e: e.last_used)
    return entries, leftovers


def cache_entries(cache_dir: str | os.PathLike[str] | None = None) -> list[CacheEntry]:
    """Every entry of the cache, most recently used first."""
    return _scan(Path(cache_dir) if cache_dir else default_cache_dir())[0][::-1]


def clear_cache(
    cache_dir: str | os.PathLike[str] | None = None, ids: list[str] | None = None
) -> tuple[list[CacheEntry], list[CacheEntry]]:
    """Remove the entries named by ``ids`` (``kind/name``; None: all, and hidden leftovers).

    Returns (removed, kept because a session holds them). An unknown id is a :class:`ConfigError`.
    """
    entries, leftovers = _scan(Path(cache_dir) if cache_dir else default_cache_dir())
    if ids is not None:
        known = {e.id: e for e in entries}
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise ConfigError(
                f"not in the cache: {', '.join(unknown)} (edge-cache list shows its entries)"
            )
        entries = [known[i] for i in dict.fromkeys(ids)]
    else:
        for leftover in leftovers:
            _remove(leftover)
    removed: list[CacheEntry] = []
    kept: list[CacheEntry] = []
    for entry in entries:
        (removed if _remove(entry.path) else kept).append(entry)
    return removed, kept


def enforce_cap(cache_dir: Path, keep: Path, max_bytes: int | None = None) -> list[CacheEntry]:
    """Remove least recently used entries until the cache fits ``max_bytes`` (default
    :func:`max_cache_bytes`); never ``keep`` nor an entry in use. Returns those removed."""
    limit = max_bytes if max_bytes is not None else max_cache_bytes()
    if limit is None:
        return []
    entries, leftovers = _scan(cache_dir)
    for leftover in leftovers:
        _remove(leftover)
    total = sum(e.size_bytes for e in entries)
    evicted = []
    kept = keep.resolve()
    for entry in entries:  # oldest first
        if total <= limit:
            break
        if entry.in_use or entry.path.resolve() == kept:
            continue
        if _remove(entry.path):
            total -= entry.size_bytes
            evicted.append(entry)
    return evicted
