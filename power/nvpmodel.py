"""Jetson power modes through the ``nvpmodel`` program: list, query, set by id or budget name.

``15W`` resolves to the mode whose name states 15 W (``15W`` on Orin Nano/NX, ``MODE_15W`` on AGX
Orin), so no mode id is hard-coded. A change that needs a reboot (the GPU TPC power-gating mask
differs) is refused: nvpmodel's reboot prompt is never answered.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

from edge_sdk.errors import BackendUnavailableError, PowerError
from edge_sdk.nvpmodel_conf import (
    NvpConfig,
    NvpModelMode,
    load_nvpmodel_conf,
    watts_in_name,
)
from edge_sdk.power import paths
from edge_sdk.power.controller import ModeChange

__all__ = ["NOT_A_JETSON", "NvpModel"]

#: What every command says when it needs nvpmodel on a machine without it.
NOT_A_JETSON = (
    "not a Jetson: no nvpmodel program here, so power modes cannot be set; "
    "'edge-power modes --conf FILE' lists the modes of a board's nvpmodel.conf"
)

_TIMEOUT_S = 60.0
_POWER_MODEL = re.compile(r"POWER_MODEL:\s*ID=(\d+)\s+NAME=(\S+)")
_PM_CONFIG = re.compile(r"PM_CONFIG:\s*DEFAULT=\S*?\((\d+)\)")


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


class NvpModel:
    """Controller over ``nvpmodel`` (paths from :mod:`edge_sdk.power.paths` unless given)."""

    kind = "nvpmodel"

    def __init__(self, program: str | None = None, conf: str | Path | None = None) -> None:
        self.program = program or paths.nvpmodel_program()
        self.conf = Path(conf) if conf else paths.nvpmodel_conf()
        self._pass_conf = conf is not None or paths.nvpmodel_conf_overridden()
        self._config: NvpConfig | None = None

    # -- running the program -------------------------------------------------------------------
    def _command(self, *args: str) -> list[str]:
        if not self.program:
            raise BackendUnavailableError(NOT_A_JETSON)
        extra = ["-f", str(self.conf)] if self._pass_conf else []
        return [self.program, *extra, *args]

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = self._command(*args)
        try:
            return subprocess.run(
                cmd,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=_TIMEOUT_S,
                check=False,
            )
        except FileNotFoundError as exc:
            raise BackendUnavailableError(f"nvpmodel program {cmd[0]} does not exist") from exc
        except PermissionError as exc:
            raise PowerError(f"cannot execute {cmd[0]}: permission denied") from exc
        except subprocess.TimeoutExpired as exc:
            raise PowerError(f"{' '.join(cmd)} did not finish within {_TIMEOUT_S:.0f} s") from exc

    # -- reading -------------------------------------------------------------------------------
    def config(self) -> NvpConfig:
        """The parsed configuration file (cached)."""
        if self._config is None:
            if not self._pass_conf and not self.conf.exists():
                if not self.program:
                    raise BackendUnavailableError(NOT_A_JETSON)
                self._config = self._config_from_program()
            else:
                self._config = load_nvpmodel_conf(self.conf)
        return self._config

    def _config_from_program(self) -> NvpConfig:
        """Modes from ``nvpmodel -p --verbose`` when the file is unreadable (no TPC masks)."""
        proc = self._run("-p", "--verbose")
        modes, default = [], None
        for match in _POWER_MODEL.finditer(proc.stdout):
            modes.append(NvpModelMode(int(match.group(1)), match.group(2)))
        found = _PM_CONFIG.search(proc.stdout)
        if found:
            default = int(found.group(1))
        if not modes or default is None:
            raise PowerError(
                f"cannot read {self.conf} and 'nvpmodel -p --verbose' listed no "
                f"modes ({_last_error(proc)})"
            )
        return NvpConfig(f"{self.program} -p --verbose", tuple(modes), default)

    def modes(self) -> list[NvpModelMode]:
        """Every mode in the configuration, in file order."""
        return list(self.config().modes)

    def current(self) -> NvpModelMode:
        """The mode the board is in now (``nvpmodel -q``)."""
        proc = self._run("-q")
        name, mode_id = None, None
        for line in proc.stdout.splitlines():
            line = line.strip()
            if line.startswith("NV Power Mode:"):
                name = line.split(":", 1)[1].strip()
            elif line.isdigit():
                mode_id = int(line)
        if proc.returncode != 0 or (mode_id is None and name is None):
            raise PowerError(f"nvpmodel -q failed: {_last_error(proc)}")
        config = self.config()
        mode = (
            config.by_id(mode_id)
            if mode_id is not None
            else next((m for m in config.modes if m.name == name), None)
        )
        if mode is None:
            raise PowerError(
                f"nvpmodel reports mode {mode_id} ({name}), which is not in "
                f"{config.path}: is EDGE_SDK_NVPMODEL_CONF the board's file?"
            )
        return mode

    def resolve(self, spec: str | int) -> NvpModelMode:
        """A mode by id (``2``), exact name (``MAXN``, ``MODE_15W``) or budget (``15W``)."""
        modes = self.modes()
        text = str(spec).strip()
        available = ", ".join(m.label() for m in modes)
        if text.isdigit():
            found = self.config().by_id(int(text))
            if found is None:
                raise PowerError(
                    f"no power mode with id {text} on this board; available: {available}"
                )
            return found
        exact = [m for m in modes if m.name.upper() == text.upper()]
        if exact:
            return exact[0]
        watts = watts_in_name(text)
        matches = [m for m in modes if watts is not None and m.watts == watts]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            names = ", ".join(m.label() for m in matches)
            raise PowerError(f"'{text}' matches several modes ({names}); name one exactly")
        raise PowerError(
            f"no power mode '{text}' on this board; available: {available} "
            "(for a budget no mode provides, use the software governor)"
        )

    @staticmethod
    def needs_reboot(current: NvpModelMode, target: NvpModelMode) -> bool:
        """True when switching changes the GPU TPC power-gating mask."""
        return (current.tpc_pg_mask or "") != (target.tpc_pg_mask or "")

    # -- changing ------------------------------------------------------------------------------
    def apply(self, target: str, dry_run: bool = False) -> ModeChange:
        """Switch to ``target`` (id, name or budget). Refuses changes that need a reboot."""
        mode = self.resolve(target)  # reads the file first: a malformed one is named as such
        now = self.current()
        command = " ".join(self._command("-m", str(mode.id)))
        if mode.id == now.id:
            return ModeChange(self.kind, now.label(), mode.label(), False, dry_run)
        if self.needs_reboot(now, mode):
            raise PowerError(
                f"switching from {now.label()} to {mode.label()} needs a reboot (the GPU TPC "
                f"power-gating mask changes: {now.tpc_pg_mask} -> {mode.tpc_pg_mask}); "
                "edge-power never confirms nvpmodel's reboot prompt. To switch anyway run "
                f"'sudo nvpmodel -m {mode.id}', answer YES and let the board reboot"
            )
        if dry_run:
            return ModeChange(self.kind, now.label(), mode.label(), True, True, [command])
        self._set(mode)
        return ModeChange(self.kind, now.label(), mode.label(), True, False, [command])

    def _set(self, mode: NvpModelMode) -> None:
        proc = self._run("-m", str(mode.id))
        output = proc.stdout + proc.stderr
        if "reboot required" in output.lower() or "bad input" in output.lower():
            raise PowerError(
                f"nvpmodel wants a reboot to switch to {mode.label()}; "
                "edge-power does not confirm it and the mode was not changed"
            )
        failed = proc.returncode != 0 or "NVPM ERROR" in output
        if failed:
            lowered = output.lower()
            if not _is_root() or any(w in lowered for w in ("permission", "root", "not permitted")):
                raise PowerError(
                    f"setting power mode {mode.label()} needs root: run "
                    f"'sudo edge-power set {mode.name}' ({_last_error(proc)})"
                )
            raise PowerError(f"nvpmodel -m {mode.id} failed: {_last_error(proc)}")
        after = self.current()
        if after.id != mode.id:
            raise PowerError(f"nvpmodel -m {mode.id} returned but the mode is {after.label()}")

    def snapshot(self) -> dict[str, Any]:
        """The current mode as a record that :meth:`restore` understands."""
        self.config()  # a malformed file is reported as such, before nvpmodel is asked
        mode = self.current()
        return {
            "mode_id": mode.id,
            "mode_name": mode.name,
            "conf": str(self.conf),
            "conf_file": str(self.conf) if self._pass_conf else None,
            "program": self.program,
        }

    def restore(self, snapshot: dict[str, Any]) -> ModeChange:
        """Put the recorded mode back (no-op when the board is already in it)."""
        return self.apply(str(snapshot["mode_id"]))


def _last_error(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [ln.strip() for ln in (proc.stderr + "\n" + proc.stdout).splitlines() if ln.strip()]
    errors = [ln for ln in lines if "ERROR" in ln or "rror" in ln]
    return (errors or lines or [f"exit status {proc.returncode}"])[-1]
