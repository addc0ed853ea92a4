"""``edge-cache``: list and clear the runtime's cache (optimized CPU graphs, TensorRT EP engines).

    edge-cache list                     # entries, most recently used first: size, last use
    edge-cache clear                    # remove every entry no session is using
    edge-cache clear ort/demo-int8-0123456789abcdef

``clear`` (of every entry) also removes the work folders (``edge-export-*`` in the temporary
directory) of exports that were killed; a running export's is kept. See
:mod:`edge_sdk.runtime.disk_cache` for the layout, the size cap and what "in use" means.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from edge_sdk.cli_support import EXIT_OK, add_common_flags, print_json, run_command
from edge_sdk.owned_dirs import remove_stale_work_dirs
from edge_sdk.runtime.disk_cache import (
    DEFAULT_MAX_MB,
    cache_entries,
    clear_cache,
    default_cache_dir,
    max_cache_bytes,
)

__all__ = ["build_parser", "main"]

_EPILOG = f"""
The cache is $EDGE_SDK_CACHE_DIR, else $XDG_CACHE_HOME/edge-sdk, else ~/.cache/edge-sdk. The
runtime keeps it under $EDGE_SDK_CACHE_MAX_MB (default {DEFAULT_MAX_MB}; 0: no cap): after it
writes an entry it removes the least recently used ones, never one a running session holds.
Exit codes: 0 ok, 1 error, 2 bad usage, 130 interrupted.
"""


def build_parser() -> argparse.ArgumentParser:
    """The ``edge-cache`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="edge-cache",
        description="List or clear the runtime's cache: onnxruntime's optimized CPU graphs (ort/) "
        "and TensorRT EP engines (trt/), one entry per bundle and machine setup.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    listing = commands.add_parser(
        "list",
        help="entries, most recently used first: size, last "
        "use, whether a running session holds it",
    )
    clear = commands.add_parser(
        "clear",
        help="remove entries (all by default); an entry a running session holds is kept and "
        "named. Clearing all also removes the work folders of killed exports (edge-export-* in "
        "the temporary directory)",
    )
    clear.add_argument(
        "entries",
        nargs="*",
        metavar="ENTRY",
        help="kind/name as `edge-cache list` shows it (default: every entry)",
    )
    for command in (listing, clear):
        command.add_argument(
            "--cache-dir",
            type=Path,
            default=None,
            metavar="DIR",
            help="the cache to act on (default: $EDGE_SDK_CACHE_DIR, else "
            "$XDG_CACHE_HOME/edge-sdk, else ~/.cache/edge-sdk)",
        )
        add_common_flags(command)
    return parser


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return "just now"


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def _list(root: Path, args: argparse.Namespace) -> int:
    entries = cache_entries(root)
    cap = max_cache_bytes()
    total = sum(e.size_bytes for e in entries)
    if args.json:
        print_json(
            {
                "cache_dir": str(root),
                "total_bytes": total,
                "max_bytes": cap,
                "entries": [e.to_dict() for e in entries],
            }
        )
        return EXIT_OK
    now = time.time()
    for entry in entries:
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.last_used))
        print(
            f"{entry.id:<48} {_mb(entry.size_bytes):>10}  {used} ({_age(now - entry.last_used)})"
            + ("  in use" if entry.in_use else "")
        )
    count = f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}"
    print(f"{count}, {_mb(total)} of {_mb(cap) if cap else 'no cap'} in {root}")
    return EXIT_OK


def _clear(root: Path, args: argparse.Namespace) -> int:
    removed, kept = clear_cache(root, args.entries or None)
    work = [] if args.entries else remove_stale_work_dirs()
    freed = sum(e.size_bytes for e in removed)
    if args.json:
        print_json(
            {
                "cache_dir": str(root),
                "removed": [e.to_dict() for e in removed],
                "kept_in_use": [e.to_dict() for e in kept],
                "freed_bytes": freed,
                "removed_export_work_dirs": [str(path) for path in work],
            }
        )
        return EXIT_OK
    for path in work:
        print(f"removed {path} (the work folder of a killed export)")
    for entry in removed:
        print(f"removed {entry.id} ({_mb(entry.size_bytes)})")
    for entry in kept:
        print(f"kept {entry.id}: a running session holds it", file=sys.stderr)
    print(f"{len(removed)} removed, {_mb(freed)} freed in {root}")
    return EXIT_OK


def _main(args: argparse.Namespace) -> int:
    root = args.cache_dir or default_cache_dir()
    return _list(root, args) if args.command == "list" else _clear(root, args)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``edge-cache``."""
    return run_command(_main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
