"""``edge-engine``: build a TensorRT engine into a bundle, or check a graph for TensorRT.

::

    edge-engine demo-int8                       # on the Orin: build, add model.int8.engine
    edge-engine demo-fp32 --fp16 --timing-cache ~/.cache/edge-sdk/trt.cache
    edge-engine --check demo-int8               # anywhere: will TensorRT take this graph?

Without TensorRT's Python bindings a build prints one line saying to install JetPack's
python3-libnvinfer and exits 1. ``--check`` exits 0 when the graph passes, 1 when it does not.
Both read the graph with onnx (the ``engine`` extra; no torch); without it they say so in one line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from edge_sdk._optional import require
from edge_sdk.cli_support import (
    EXIT_ERROR,
    EXIT_OK,
    Progress,
    add_common_flags,
    print_json,
    run_command,
)
from edge_sdk.exporters.tensorrt.ops import DEFAULT_TARGET

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (every flag documented in ``--help``)."""
    parser = argparse.ArgumentParser(
        prog="edge-engine",
        description="Build a TensorRT engine of a bundle on this device (added to the bundle with "
        "the TensorRT version, GPU and compute capability), or --check whether "
        "TensorRT can take a bundle's graph (no TensorRT needed).",
    )
    parser.add_argument("bundle", help="bundle directory (or, with --check, an .onnx file)")
    parser.add_argument(
        "--check",
        action="store_true",
        help="only check TensorRT compatibility; exit 0 pass, 1 fail",
    )
    parser.add_argument(
        "--trt-version",
        default=None,
        metavar="V",
        help=f"with --check: the TensorRT to check for, 8.6 or 10 (default {DEFAULT_TARGET}; "
        "JetPack 6.0 ships 8.6, 6.1/6.2 ship 10.3)",
    )
    parser.add_argument(
        "--as-is",
        action="store_true",
        help="with --check: check the file exactly, without the rewrites edge-engine "
        "applies before building",
    )
    parser.add_argument("--fp16", action="store_true", help="let TensorRT use FP16 kernels")
    parser.add_argument(
        "--int8",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="INT8 kernels from the bundle's Q/DQ scales (default: on for int8 bundles)",
    )
    parser.add_argument(
        "--workspace-mb",
        type=int,
        default=None,
        metavar="N",
        help="builder workspace cap in MB (default: what the planner leaves on the "
        "detected module, at most 4096)",
    )
    parser.add_argument(
        "--max-seq-len",
        type=int,
        default=None,
        metavar="N",
        help="longest context the engine serves (default: the bundle's)",
    )
    parser.add_argument(
        "--timing-cache",
        type=Path,
        default=None,
        metavar="FILE",
        help="read and update this TensorRT timing cache (faster rebuilds)",
    )
    parser.add_argument(
        "--builder-level",
        type=int,
        default=None,
        choices=range(6),
        metavar="N",
        help="TensorRT builder optimization level 0-5 (default 3)",
    )
    parser.add_argument(
        "--dla",
        type=int,
        default=None,
        metavar="N",
        help="build for DLA core N, with GPU fallback (AGX Orin, Orin NX)",
    )
    parser.add_argument(
        "--device",
        default=None,
        metavar="NAME",
        help="planner module name for the workspace cap (default: detected)",
    )
    add_common_flags(parser)
    return parser


def _check(args: argparse.Namespace) -> int:
    require("onnx", "edge-engine --check")
    from edge_sdk.exporters.tensorrt.compat import check_path

    report = check_path(
        args.bundle, args.trt_version or DEFAULT_TARGET, args.max_seq_len, rewrite=not args.as_is
    )
    if args.json:
        print_json(report.to_dict())
    else:
        print(report.format())
    return EXIT_OK if report.ok else EXIT_ERROR


def _build(args: argparse.Namespace) -> int:
    require("onnx", "edge-engine")
    from edge_sdk.exporters.tensorrt.build import EngineOptions, build_engine

    options = EngineOptions(
        fp16=args.fp16,
        int8=args.int8,
        workspace_mb=args.workspace_mb,
        max_seq_len=args.max_seq_len,
        timing_cache=args.timing_cache,
        builder_level=args.builder_level,
        dla_core=args.dla,
        device=args.device,
    )
    from edge_sdk.exporters.tensorrt.compat import missed_gate

    missed = missed_gate(Path(args.bundle))
    if missed is not None:
        print(missed.format(), file=sys.stderr)
    progress = Progress(5, quiet=args.json)
    result = build_engine(args.bundle, options, progress)
    if args.json:
        print_json(result.record)
    else:
        rec = result.record
        print(
            f"{rec['file']} added to {result.bundle.path}: TensorRT {rec['tensorrt']}, "
            f"{rec['gpu']} (sm {rec['compute_capability']}), built in {rec['build_seconds']} s"
        )
    return EXIT_OK


def _main(args: argparse.Namespace) -> int:
    return _check(args) if args.check else _build(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``edge-engine``."""
    return run_command(_main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
