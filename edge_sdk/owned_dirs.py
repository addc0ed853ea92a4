"""Temporary folders that name the process that owns them, so that a later run can remove the
ones a killed process left behind (SIGKILL, the OOM killer on a Jetson) and never a live one's.

Each folder holds :data:`OWNER_FILE`: the owner's pid, host name and (on Linux) start time. A
folder is *stale* only when that file says the owner ran on this host and the process is gone
(``os.kill(pid, 0)`` finds none, it is a zombie, or the pid now belongs to a later process). A
folder without the file (an older edge-sdk's, or one made a microsecond before its owner was
killed) is never removed: nothing says whose it is.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "OWNER_FILE",
    "WORK_PREFIX",
    "make_owned_dir",
    "owner_gone",
    "remove_stale",
    "remove_stale_work_dirs",
    "work_dir",
]

OWNER_FILE = ".edge-sdk-owner"
WORK_PREFIX = "edge-export-"


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), ``-`` where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "-"
    return stat.rsplit(")", 1)[1].split()[19]  # field 22; the name before ")" may hold spaces


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "?"


def make_owned_dir(parent: Path, prefix: str, suffix: str = "") -> Path:
    """A new private folder in ``parent`` (as :func:`tempfile.mkdtemp`) that names its owner."""
    folder = Path(tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=parent))
    pid = os.getpid()
    (folder / OWNER_FILE).write_text(f"{pid} {socket.gethostname()} {_start_time(pid)}\n")
    return folder


def owner_gone(folder: Path) -> bool:
    """Whether ``folder``'s owner is known to have ended (False when unknown or alive)."""
    try:
        pid_text, host, started = (folder / OWNER_FILE).read_text().split()
        pid = int(pid_text)
    except (OSError, ValueError):
        return False
    if host != socket.gethostname() or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's live process
        return False
    if _state(pid) == "Z":  # killed, not yet reaped by its parent
        return True
    return started != "-" and _start_time(pid) not in ("-", started)  # pid reused since


def remove_stale(parent: Path, pattern: str) -> list[Path]:
    """Remove the folders in ``parent`` matching ``pattern`` whose owner is gone; the removed."""
    try:
        candidates = sorted(parent.glob(pattern))
    except OSError:
        return []
    removed = []
    for folder in candidates:
        if folder.is_dir() and not folder.is_symlink() and owner_gone(folder):
            shutil.rmtree(folder, ignore_errors=True)
            if not folder.exists():
                removed.append(folder)
    return removed


def remove_stale_work_dirs() -> list[Path]:
    """Remove the export work folders (``edge-export-*`` in the temporary directory) that a
    killed export left; the removed."""
    return remove_stale(Path(tempfile.gettempdir()), f"{WORK_PREFIX}*")


@contextlib.contextmanager
def work_dir() -> Iterator[Path]:
    """An owned ``edge-export-*`` work folder in the temporary directory, removed on exit; stale
    ones of killed exports are removed first."""
    remove_stale_work_dirs()
    folder = make_owned_dir(Path(tempfile.gettempdir()), WORK_PREFIX)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
