"""What every ``edge-*`` command shares: exit codes, one-line errors, progress on stderr.

Convention (ARCHITECTURE.md): results on stdout, progress on stderr (a bar on a terminal, plain
lines otherwise), exit 0 on success, 1 for an error the user can fix, 2 for bad usage, 130 when
interrupted; ``--debug`` shows the traceback. A warning is one line too (``prog: warning: ...``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from edge_sdk.errors import EdgeError

__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "Progress",
    "add_common_flags",
    "print_json",
    "run_command",
]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def add_common_flags(parser: argparse.ArgumentParser) -> None:
    """Add ``--json`` and ``--debug``, which every command takes."""
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object on stdout instead of a readable summary",
    )
    parser.add_argument(
        "--debug", action="store_true", help="show the full traceback when something fails"
    )


def run_command(
    main: Callable[[argparse.Namespace], int],
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None = None,
) -> int:
    """Parse ``argv`` and run ``main``, mapping errors to one stderr line and an exit code."""
    args = parser.parse_args(argv)  # exits 2 on bad usage, as argparse does
    prog = parser.prog
    try:
        with warnings.catch_warnings():
            if not getattr(args, "debug", False):
                warnings.showwarning = _one_line_warning(prog)
            return main(args)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except EdgeError as exc:
        if getattr(args, "debug", False):
            traceback.print_exc()
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:
        return EXIT_OK


def _one_line_warning(prog: str) -> Callable[..., None]:
    """``warnings.showwarning`` for a command: ``prog: warning: message``, no source line."""

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        text = " ".join(str(message).split())
        print(f"{prog}: warning: {text}", file=file or sys.stderr)

    return show


def print_json(data: Any, stream: TextIO | None = None) -> None:
    """Write one JSON object followed by a newline."""
    out = stream or sys.stdout
    out.write(json.dumps(data, indent=2, default=str) + "\n")
    out.flush()


class Progress:
    """Stage-by-stage progress on stderr: ``[2/6] export ...`` lines, with a bar on a terminal.

    ``total_stages`` 0: the work that uses it says how many (``edge_sdk.exporters.export`` does).
    """

    def __init__(
        self, total_stages: int = 0, stream: TextIO | None = None, quiet: bool = False
    ) -> None:
        self.total = total_stages
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.index = 0
        self._started = time.perf_counter()
        self._stage_started = self._started
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def stage(self, name: str, detail: str = "") -> None:
        """Announce the next stage."""
        self.index += 1
        self._stage_started = time.perf_counter()
        self._line(f"[{self.index}/{self.total}] {name}" + (f": {detail}" if detail else ""))

    def update(self, done: int, total: int, what: str = "") -> None:
        """Progress inside a stage (a bar on a terminal, a line every 25% otherwise)."""
        if self.quiet or total <= 0:
            return
        if self._tty:
            width = 30
            filled = int(width * done / total)
            self.stream.write(
                f"\r      [{'#' * filled}{'.' * (width - filled)}] {done}/{total} {what}"
            )
            if done >= total:
                self.stream.write("\n")
            self.stream.flush()
        elif done == total or (done * 4 // total) != ((done - 1) * 4 // total):
            self._line(f"      {done}/{total} {what}")

    def note(self, message: str) -> None:
        """Something the user should know about the current stage (``note: ...``)."""
        self._line(f"      note: {message}")

    def done(self, message: str) -> None:
        """Final line with the total elapsed time."""
        self._line(f"{message} ({time.perf_counter() - self._started:.1f} s)")

    def _line(self, text: str) -> None:
        if not self.quiet:
            self.stream.write(text + "\n")
            self.stream.flush()
