"""Set a power mode and always put the previous one back.

:class:`PowerModeGuard` records the state before any change on disk (``EDGE_SDK_STATE_DIR``), then
applies the change; on leaving - normally, by exception, Ctrl-C, SIGTERM or SIGHUP - it restores
the state it found. After a hard kill (SIGKILL, power loss) :func:`restore_recorded` (the
``edge-power restore`` command) reads the record and puts the original state back::

    with power_mode("15W"):
        run_the_model()
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from edge_sdk.errors import EdgeError, PowerError
from edge_sdk.power import paths
from edge_sdk.power.controller import ModeChange, PowerController
from edge_sdk.power.files import write_json_atomic

__all__ = [
    "PowerModeGuard",
    "controller_for",
    "power_mode",
    "record_state",
    "recorded_states",
    "restore_recorded",
    "signals_deferred",
]

_RECORD_PREFIX = "previous-"
_SIGNALS = tuple(
    s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s is not None
)


def _record_path(kind: str) -> Path:
    return paths.state_dir() / f"{_RECORD_PREFIX}{kind}.json"


def record_state(kind: str, snapshot: dict[str, Any]) -> bool:
    """Write the state before a change, unless one is already recorded (the earliest original
    wins). Durable: written to a temporary file, fsynced, renamed. Returns True if written."""
    path = _record_path(kind)
    if path.exists():
        return False
    record = {"kind": kind, "snapshot": snapshot, "recorded_at": time.time(), "pid": os.getpid()}
    try:
        write_json_atomic(path, record)
    except OSError as exc:
        raise PowerError(
            f"cannot record the current power state in {path.parent} ({exc}); set "
            "EDGE_SDK_STATE_DIR to a writable folder"
        ) from exc
    return True


def recorded_states() -> dict[str, dict[str, Any]]:
    """Every recorded state, ``{kind: snapshot}``."""
    found: dict[str, dict[str, Any]] = {}
    folder = paths.state_dir()
    for path in sorted(folder.glob(f"{_RECORD_PREFIX}*.json")) if folder.is_dir() else []:
        try:
            record = json.loads(path.read_text())
            found[str(record["kind"])] = dict(record["snapshot"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise PowerError(
                f"unreadable power-state record {path} ({exc}), so the mode to go back to is "
                "unknown: put the board in the mode you want ('edge-power modes' lists them, "
                f"'sudo edge-power set MODE' sets one), then delete the record: sudo rm {path}"
            ) from exc
    return found


def _forget(kind: str) -> None:
    _record_path(kind).unlink(missing_ok=True)


def controller_for(kind: str, snapshot: dict[str, Any] | None = None) -> PowerController:
    """A controller of ``kind`` (``nvpmodel``, ``jetson_clocks``, ``nvml``)."""
    if kind == "nvpmodel":
        from edge_sdk.power.nvpmodel import NvpModel

        return NvpModel(conf=(snapshot or {}).get("conf_file"))
    if kind == "jetson_clocks":
        from edge_sdk.power.jetson_clocks import JetsonClocks

        return JetsonClocks()
    if kind == "nvml":
        from edge_sdk.power.nvml_limit import NvmlPowerLimit

        return NvmlPowerLimit(index=int((snapshot or {}).get("index", 0)))
    raise PowerError(f"unknown power controller '{kind}'")


def restore_recorded() -> list[ModeChange]:
    """Put back every recorded state (jetson_clocks first, then the mode) and forget the records."""
    changes = []
    states = recorded_states()
    for kind in sorted(states, key=lambda k: k != "jetson_clocks"):
        changes.append(controller_for(kind, states[kind]).restore(states[kind]))
        _forget(kind)
    return changes


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP arriving inside the block are delivered (to the handlers in
    place before it) when it ends: for steps that must not be cut in two, such as starting a
    child and keeping its handle, or recording a state and remembering to forget it. Signals
    the process ignores stay ignored; off the main thread this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []

    def defer(signum: int, frame: FrameType | None) -> None:
        pending.append(signum)

    previous = {
        sig: signal.signal(sig, defer)
        for sig in (signal.SIGINT, *_SIGNALS)
        if signal.getsignal(sig) is not signal.SIG_IGN
    }
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        for sig in dict.fromkeys(pending):
            signal.raise_signal(sig)


class _Interrupted(SystemExit):
    """Raised from a SIGTERM/SIGHUP handler so the ``with`` block unwinds and restores."""


def _raise_on_signal(signum: int, frame: FrameType | None) -> None:
    raise _Interrupted(128 + signum)


class PowerModeGuard:
    """Context manager: apply ``(controller, target)`` steps, restore them in reverse on exit."""

    def __init__(self, steps: list[tuple[PowerController, str]], dry_run: bool = False) -> None:
        self.steps = steps
        self.dry_run = dry_run
        self.changes: list[ModeChange] = []
        self._done: list[tuple[PowerController, dict[str, Any], bool]] = []
        self._handlers: dict[int, Any] = {}
        self._pending: int | None = None

    def __enter__(self) -> PowerModeGuard:
        self._install_handlers()
        try:
            for controller, target in self.steps:
                planned = controller.apply(target, dry_run=True)  # validate before recording
                if self.dry_run:
                    self.changes.append(planned)
                    continue
                snapshot = controller.snapshot()
                with signals_deferred():  # a record written is a record remembered
                    wrote = record_state(controller.kind, snapshot)
                    self._done.append((controller, snapshot, wrote))
                self.changes.append(controller.apply(target))
        except BaseException:
            self._restore(raising=False)
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._restore(raising=exc_type is None)

    def _restore(self, raising: bool) -> None:
        blocked = self._block_signals()
        failures = []
        try:
            while self._done:
                controller, snapshot, wrote = self._done.pop()
                try:
                    controller.restore(snapshot)
                except (EdgeError, OSError) as exc:
                    failures.append(f"{controller.kind}: {exc}")
                    continue
                if wrote:
                    _forget(controller.kind)
        finally:
            self._restore_handlers(blocked)
        pending, self._pending = self._pending, None
        if failures:
            message = (
                "could not restore the previous power state ("
                + "; ".join(failures)
                + "); run: sudo edge-power restore"
            )
            if raising:
                raise PowerError(message)
            print(f"edge-power: warning: {message}", file=sys.stderr)
        if pending == signal.SIGINT:
            raise KeyboardInterrupt
        if pending is not None:
            raise _Interrupted(128 + pending)

    # -- signals: SIGTERM/SIGHUP unwind the block; one arriving during the restore waits for it ----
    def _install_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in _SIGNALS:
            self._handlers[sig] = signal.signal(sig, _raise_on_signal)

    def _block_signals(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}

        def defer(signum: int, frame: FrameType | None) -> None:
            self._pending = signum

        return {sig: signal.signal(sig, defer) for sig in (signal.SIGINT, *_SIGNALS)}

    def _restore_handlers(self, blocked: dict[int, Any]) -> None:
        if blocked:
            signal.signal(signal.SIGINT, blocked[signal.SIGINT])
        for sig, handler in self._handlers.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        self._handlers = {}


def power_mode(
    mode: str,
    jetson_clocks: bool = False,
    dry_run: bool = False,
    controller: PowerController | None = None,
) -> PowerModeGuard:
    """Guard that sets the Jetson power ``mode`` (id, name or budget like ``15W``) and, with
    ``jetson_clocks``, pins the clocks; both are restored on exit."""
    from edge_sdk.power.jetson_clocks import JetsonClocks
    from edge_sdk.power.nvpmodel import NvpModel

    steps: list[tuple[PowerController, str]] = [(controller or NvpModel(), mode)]
    if jetson_clocks:
        steps.append((JetsonClocks(), "max"))
    return PowerModeGuard(steps, dry_run=dry_run)
