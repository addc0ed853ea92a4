"""A real small filesystem for tests of a full disk, without root: a tmpfs mounted in a user and
mount namespace (``unshare --user --map-root-user --mount``), gone when the command ends. Where
the kernel does not allow unprivileged namespaces, :func:`small_disk_available` is False and the
tests that need it skip; the listing of what the command left on the disk is written outside."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

__all__ = ["SmallDiskRun", "run_on_small_disk", "small_disk_available"]

_SCRIPT = (
    'mount -t tmpfs -o "size=$1" tmpfs "$2" || exit 97; disk="$2"; listing="$3"; shift 3; '
    '"$@"; rc=$?; (cd "$disk" && find . -mindepth 1 | sort) > "$listing"; exit $rc'
)


@functools.cache
def small_disk_available() -> bool:
    """Whether this machine lets an unprivileged process mount a tmpfs in its own namespace."""
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        [
            "unshare",
            "--user",
            "--map-root-user",
            "--mount",
            "sh",
            "-c",
            "d=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs $d && umount $d && rmdir $d",
        ],
        capture_output=True,
        timeout=30,
        check=False,
    )
    return probe.returncode == 0


class SmallDiskRun:
    """What :func:`run_on_small_disk` ran: the process and the paths left on the disk."""

    def __init__(self, done: subprocess.CompletedProcess[bytes], left: list[str]) -> None:
        self.done = done
        self.left = left

    @property
    def stderr(self) -> str:
        return self.done.stderr.decode("utf-8", "replace")

    @property
    def stdout(self) -> str:
        return self.done.stdout.decode("utf-8", "replace")


def run_on_small_disk(
    command: Sequence[str], disk: Path, size: str, env: dict[str, str] | None = None
) -> SmallDiskRun:
    """Run ``command`` with a tmpfs of ``size`` (``"600k"``) mounted on the empty folder
    ``disk``; return it with what it left on that disk (paths relative to it)."""
    disk.mkdir(parents=True, exist_ok=True)
    listing = disk.parent / f"{disk.name}.listing"
    done = subprocess.run(
        [
            "unshare",
            "--user",
            "--map-root-user",
            "--mount",
            "sh",
            "-c",
            _SCRIPT,
            "sh",
            size,
            str(disk),
            str(listing),
            *command,
        ],
        capture_output=True,
        timeout=300,
        check=False,
        env={**os.environ, **(env or {})},
    )
    assert done.returncode != 97, done.stderr.decode()
    left = listing.read_text().split("\n") if listing.exists() else []
    return SmallDiskRun(done, [line for line in left if line])
