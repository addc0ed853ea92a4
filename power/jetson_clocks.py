"""``jetson_clocks``: pin CPU/GPU/EMC clocks at the mode's maximum, with store/restore."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from edge_sdk.errors import BackendUnavailableError, PowerError
from edge_sdk.power import paths
from edge_sdk.power.controller import ModeChange

__all__ = ["JetsonClocks"]


class JetsonClocks:
    """Controller over ``jetson_clocks``; its snapshot is a ``--store`` file in the state dir."""

    kind = "jetson_clocks"

    def __init__(self, program: str | None = None, store_file: Path | None = None) -> None:
        self.program = program or paths.jetson_clocks_program()
        self.store_file = store_file or paths.state_dir() / "jetson_clocks.store"

    def _run(self, *args: str) -> str:
        if not self.program:
            raise BackendUnavailableError(
                "jetson_clocks was not found (Jetson only; set "
                "EDGE_SDK_JETSON_CLOCKS to point at it)"
            )
        cmd = [self.program, *args]
        try:
            proc = subprocess.run(
                cmd,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PowerError(f"running {' '.join(cmd)} failed: {exc}") from exc
        if proc.returncode != 0:
            why = proc.stderr.strip() or proc.stdout.strip() or f"exit {proc.returncode}"
            why = why.splitlines()[-1]
            hint = (
                " (it needs root: use sudo)"
                if "root" in why.lower() or "permission" in why.lower()
                else ""
            )
            raise PowerError(f"{' '.join(cmd)} failed: {why}{hint}")
        return proc.stdout

    def show(self) -> str:
        """``jetson_clocks --show`` output."""
        return self._run("--show")

    def snapshot(self) -> dict[str, Any]:
        """Store the current clocks to :attr:`store_file`."""
        self.store_file.parent.mkdir(parents=True, exist_ok=True)
        self._run("--store", str(self.store_file))
        return {"store_file": str(self.store_file)}

    def apply(self, target: str = "max", dry_run: bool = False) -> ModeChange:
        """Pin the clocks at the current mode's maximum."""
        command = str(self.program or "jetson_clocks")
        if not dry_run:
            self._run()
        return ModeChange(self.kind, "stored clocks", "pinned at maximum", True, dry_run, [command])

    def restore(self, snapshot: dict[str, Any]) -> ModeChange:
        """Put the stored clocks back."""
        self._run("--restore", str(snapshot["store_file"]))
        return ModeChange(self.kind, "pinned", "stored clocks", True)
