"""The one place where the power module finds hardware: sysfs, nvpmodel, jetson_clocks, state.

Every path goes through here so that tests (and users with unusual installs) can point the module
at a fake board with environment variables:

- ``EDGE_SDK_SYSFS_ROOT``: prefix for every ``/sys`` path (default: the real tree)
- ``EDGE_SDK_NVPMODEL``: the ``nvpmodel`` program (default: ``nvpmodel`` on ``PATH`` or /usr/sbin)
- ``EDGE_SDK_NVPMODEL_CONF``: its configuration, passed with ``-f`` (default /etc/nvpmodel.conf)
- ``EDGE_SDK_JETSON_CLOCKS``: the ``jetson_clocks`` program (default: on ``PATH``)
- ``EDGE_SDK_STATE_DIR``: where the mode before a change is recorded (default
  ``/var/lib/edge-sdk`` as root, else ``~/.local/state/edge-sdk``)
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

__all__ = [
    "jetson_clocks_program",
    "nvpmodel_conf",
    "nvpmodel_conf_overridden",
    "nvpmodel_program",
    "state_dir",
    "sysfs",
]

_NVPMODEL_CONF = "/etc/nvpmodel.conf"
# nvpmodel and jetson_clocks live in /usr/sbin and /usr/bin on JetPack; sudo's PATH may lack them.
_SBIN = ("/usr/sbin", "/usr/bin", "/sbin", "/bin")


def sysfs(path: str) -> Path:
    """Map an absolute ``/sys/...`` path into ``EDGE_SDK_SYSFS_ROOT`` when it is set."""
    root = os.environ.get("EDGE_SDK_SYSFS_ROOT")
    if not root:
        return Path(path)
    return Path(root) / path.lstrip("/")


def _program(env: str, name: str) -> str | None:
    override = os.environ.get(env)
    if override:
        return override
    found = shutil.which(name)
    if found:
        return found
    for folder in _SBIN:
        candidate = Path(folder) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def nvpmodel_program() -> str | None:
    """The ``nvpmodel`` executable, or None when this is not a Jetson."""
    return _program("EDGE_SDK_NVPMODEL", "nvpmodel")


def nvpmodel_conf() -> Path:
    """nvpmodel's configuration file."""
    return Path(os.environ.get("EDGE_SDK_NVPMODEL_CONF") or _NVPMODEL_CONF)


def nvpmodel_conf_overridden() -> bool:
    """True when the configuration file was overridden (nvpmodel is then called with ``-f``)."""
    return bool(os.environ.get("EDGE_SDK_NVPMODEL_CONF"))


def jetson_clocks_program() -> str | None:
    """The ``jetson_clocks`` executable, or None."""
    return _program("EDGE_SDK_JETSON_CLOCKS", "jetson_clocks")


def state_dir() -> Path:
    """Where the mode before a change is recorded (created on first use by the writer)."""
    override = os.environ.get("EDGE_SDK_STATE_DIR")
    if override:
        return Path(override)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/lib/edge-sdk")
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "edge-sdk"
