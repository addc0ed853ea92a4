"""Console-script entry points for commands whose module takes seconds to import (torch): a
Ctrl-C in those seconds is one line and exit 130, as it is once the command runs, instead of a
``KeyboardInterrupt`` traceback from inside the import. Only the standard library is imported
here, so the window before the handler is the interpreter's own start. A console-script layer
above the packages (as ARCHITECTURE.md allows a CLI that composes them): the package it starts
is imported lazily, inside the entry point, because ``edge_sdk.exporters`` imports torch."""

from __future__ import annotations

import sys

from edge_sdk.cli_support import EXIT_INTERRUPTED

__all__ = ["edge_export"]


def edge_export() -> int:
    """``edge-export``: :func:`edge_sdk.exporters.cli.main`, interruptible while it imports."""
    try:
        from edge_sdk.exporters.cli import main

        return main()
    except KeyboardInterrupt:
        print("edge-export: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
