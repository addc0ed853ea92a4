"""``edge-export``: a Lite model (``model.pt`` or Hugging Face folder) to a verified bundle."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from edge_sdk.cli_support import EXIT_OK, Progress, add_common_flags, print_json, run_command
from edge_sdk.exporters.evaluate import THRESHOLDS
from edge_sdk.exporters.export import DEFAULT_MAX_SEQ_LEN, ExportResult, export

__all__ = ["main", "build_parser"]

_EPILOG = f"""
examples:
  edge-export model.pt --int8                 # -> model-int8/ bundle
  edge-export ./Qwen2.5-0.5B --fp32 -o qwen-fp32
  edge-export model.pt --int8 --calib my.txt --eval-text heldout.txt

accuracy gate (int8): top-1 agreement >= {THRESHOLDS['int8']['min_top1_agreement']} and perplexity
ratio <= {THRESHOLDS['int8']['max_perplexity_ratio']} against the float model on held-out text;
--force keeps an export that misses it. Exit codes: 0 ok, 1 error, 2 bad usage, 130 interrupted.
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used to document the command)."""
    parser = argparse.ArgumentParser(
        prog="edge-export",
        description="Export a Lite model (an edge-sdk model.pt, or a Hugging Face folder of a "
                    "Llama, Qwen2 or Mistral model) to a verified ONNX bundle.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="model.pt checkpoint or Hugging Face model folder")
    parser.add_argument("-o", "--output", type=Path,
                        help="bundle directory to write (default: <model name>-<precision> here); "
                             "an existing bundle there is replaced")
    precision = parser.add_mutually_exclusive_group(required=True)
    precision.add_argument("--int8", dest="precision", action="store_const", const="int8",
                           help="int8 weights (per channel, standard QDQ), accuracy-checked")
    precision.add_argument("--fp32", dest="precision", action="store_const", const="fp32",
                           help="float32, no quantization")
    parser.add_argument("--calib", type=Path, metavar="TEXTFILE",
                        help="UTF-8 text whose activation statistics set int8 clipping ranges "
                             "(default: the built-in calibration text)")
    parser.add_argument("--eval-text", type=Path, metavar="TEXTFILE",
                        help="held-out UTF-8 text for the accuracy check (default: built-in text)")
    parser.add_argument("--eval-tokens", type=int, default=2048, metavar="N",
                        help="at most N tokens of the evaluation text (default 2048)")
    parser.add_argument("--max-seq-len", type=int, metavar="N",
                        help="longest context the bundle is made for (default: the model's limit, "
                             f"at most {DEFAULT_MAX_SEQ_LEN})")
    parser.add_argument("--force", action="store_true",
                        help="keep an int8 export whose accuracy is below the threshold")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    add_common_flags(parser)
    return parser


def _run(args: argparse.Namespace) -> int:
    output = args.output or Path(f"{args.model.stem if args.model.is_file() else args.model.name}-{args.precision}")
    progress = Progress(6 if args.precision == "int8" else 4, quiet=args.quiet)
    result = export(args.model, output, args.precision, calib_text=args.calib, eval_text=args.eval_text,
                    eval_tokens=args.eval_tokens, max_seq_len=args.max_seq_len, force=args.force,
                    progress=progress)
    progress.done(f"wrote {result.bundle.path}")
    if args.json:
        print_json(summary_dict(result))
    else:
        sys.stdout.write(summary_text(result))
    return EXIT_OK


def summary_dict(result: ExportResult) -> dict[str, object]:
    """The export's outcome as a JSON-ready dict."""
    return {
        "bundle": str(result.bundle.path),
        "precision": result.precision,
        "onnx_bytes": result.onnx_bytes,
        "float32_weight_bytes": result.float_weight_bytes,
        "parity_vs_pytorch": result.parity.worst,
        "accuracy": result.accuracy.to_dict() if result.accuracy else None,
    }


def summary_text(result: ExportResult) -> str:
    """A short readable summary of the export."""
    mb = 1e6
    lines = [
        f"bundle     {result.bundle.path}",
        f"precision  {result.precision}",
        f"model      {result.onnx_bytes / mb:.2f} MB ONNX "
        f"({result.onnx_bytes / result.float_weight_bytes:.2f} x the float32 weights, "
        f"{result.float_weight_bytes / mb:.2f} MB)",
        f"parity     ONNX vs PyTorch relative logit difference {result.parity.worst:.1e}",
    ]
    acc = result.accuracy
    if acc:
        lines += [
            f"accuracy   top-1 agreement {acc.top1_agreement:.3f}, perplexity {acc.perplexity_float:.3f} -> "
            f"{acc.perplexity_quantized:.3f} (x{acc.perplexity_ratio:.4f}), mean KL {acc.mean_kl_divergence:.2e}",
            f"           on {acc.tokens} tokens of {acc.text_source}; gate: {acc.gate}",
        ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``edge-export``."""
    return run_command(_run, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
