"""``edge-export``: a Lite model (``model.pt``, Hugging Face folder or hub id, GGUF file) to a
verified bundle."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_sdk._optional import require
from edge_sdk.cli_support import EXIT_OK, Progress, add_common_flags, print_json, run_command
from edge_sdk.config import DEFAULT_MAX_SEQ_LEN
from edge_sdk.errors import ConfigError
from edge_sdk.exporters.evaluate import THRESHOLDS
from edge_sdk.exporters.hub import is_hub_id
from edge_sdk.exporters.quantize.config import INT4_DEFAULT, QuantConfig
from edge_sdk.planner.precision import INT4_DEFAULT_GROUP_SIZE, INT4_GROUP_SIZE, INT8_GROUP_SIZE

if TYPE_CHECKING:  # torch: imported when an export runs, so --help works without it
    from edge_sdk.exporters.export import ExportResult

__all__ = ["build_parser", "main"]


_INT4_DEFAULT_TEXT = QuantConfig(**INT4_DEFAULT).label


def _gates() -> str:
    return ", ".join(
        f"{name} {lim['min_top1_agreement']} / {lim['max_perplexity_ratio']}"
        for name, lim in THRESHOLDS.items()
    )


_EPILOG = f"""
examples:
  edge-export model.pt --int8                 # -> model-int8/ bundle
  edge-export model.pt --int4 --method gptq --group-size 128 --act-scale
  edge-export model.pt --w8a8 --calib-method entropy --smoothquant-alpha 0.5
  edge-export ./Qwen2.5-0.5B --fp16 -o qwen-fp16
  edge-export Qwen/Qwen2.5-0.5B-Instruct --int4   # a hub id: fetched into the Hugging Face cache
  edge-export SmolLM2-135M-Instruct.Q4_1.gguf --int8   # GGUF: dequantized, then re-quantized
  edge-export model.pt --int8 --calib my.txt --eval-text heldout.txt
  edge-export model.pt --int8 --trt --timing-cache ~/.cache/edge-sdk/trt.cache   # on the Orin

a MODEL that is no local path but reads as owner/name is a Hugging Face hub id: only its config,
safetensors and tokenizer files are fetched, into the hub's cache (HF_HOME / HF_HUB_CACHE);
HF_HUB_OFFLINE=1 reads the cache only; gated models need `hf auth login` or HF_TOKEN.

accuracy gate against the float model on held-out text (least top-1 agreement, largest
perplexity ratio): {_gates()}; --force keeps an export that misses it.

fp32, int8 and int4 are exported one decoder layer at a time from the weights (memory-mapped
safetensors, GGUF tensors dequantized when read): peak memory stays near the bundle's size, so a
1-4B model exports on this machine or on the Orin itself; the summary reports time and peak RSS.
fp16 and w8a8 trace the whole float model (models up to about 0.5B parameters).
Exit codes: 0 ok, 1 error, 2 bad usage, 130 interrupted.
"""


def _int8_help() -> str:
    """``--int8``'s help, from the int8 default itself (it once said "per channel" after the
    default became blocks)."""
    default = QuantConfig.from_precision("int8")
    alpha = default.smoothquant_alpha
    return (
        f"int8 weights in blocks of {default.group_size} inputs in the CPU graph "
        "(--group-size; 0: one scale per output channel), "
        + (f"SmoothQuant {alpha:g}, " if alpha is not None else "")
        + "float activations; the standard graph (TensorRT's) stores them per output channel"
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used to document the command)."""
    parser = argparse.ArgumentParser(
        prog="edge-export",
        description="Export a Lite model (an edge-sdk model.pt, a Hugging Face folder or hub id "
        "of a Llama, Qwen2 or Mistral model, or a llama.cpp GGUF file of a Llama or "
        "Qwen2 model) to a verified ONNX bundle.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "model",  # a str: Path would turn ./owner/name into the hub id owner/name
        help="model.pt checkpoint, Hugging Face model folder, hub id (owner/name) or .gguf file",
    )
    parser.add_argument(
        "--revision",
        metavar="REV",
        help="with a hub id: the branch, tag or commit to fetch (default: main)",
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        help="bundle directory to write (default: <model name>-<precision> here); "
        "an existing bundle there is replaced",
    )
    precision = parser.add_mutually_exclusive_group(required=True)
    precision.add_argument(
        "--int8",
        dest="precision",
        action="store_const",
        const="int8",
        help=_int8_help(),
    )
    precision.add_argument(
        "--int4",
        dest="precision",
        action="store_const",
        const="int4",
        help="int4 weights, block-wise along the reduction dimension (opset 21); "
        "onnxruntime runs them with its 4-bit kernel",
    )
    precision.add_argument(
        "--w8a8",
        dest="precision",
        action="store_const",
        const="w8a8",
        help="int8 weights and activations (static QDQ, TensorRT explicit quantization); "
        "slow on onnxruntime's CPU EP",
    )
    precision.add_argument(
        "--fp16",
        dest="precision",
        action="store_const",
        const="fp16",
        help="float16 weights and compute (norms and softmax in float32), float32 I/O",
    )
    precision.add_argument(
        "--fp32",
        dest="precision",
        action="store_const",
        const="fp32",
        help="float32, no quantization",
    )
    int4 = parser.add_argument_group("int4 options (--group-size: int8 too)")
    int4.add_argument(
        "--method",
        choices=["rtn", "gptq"],
        help="a scheme of your own: rtn (round to nearest) or gptq (error-compensating, uses the "
        "calibration text), with only the options you give; without it --int4 makes "
        f"{_INT4_DEFAULT_TEXT}",
    )
    int4.add_argument(
        "--group-size",
        type=int,
        metavar="N",
        help="(int4 and int8) weights per scale along the reduction dimension, a power "
        f"of two >= 16 (default {INT4_DEFAULT_GROUP_SIZE} for --int4 alone, "
        f"{INT4_GROUP_SIZE} with --method, {INT8_GROUP_SIZE} for int8); for int8, "
        "0 stores one "
        "scale per output channel in both graphs (int8 blocks are the CPU graph's only: "
        "model.onnx stores them per output channel, TensorRT's form)",
    )
    int4.add_argument(
        "--lm-head-bits",
        type=int,
        choices=[4, 8],
        metavar="{4,8}",
        help="LM head: 8 (default: int8 per output channel; a tied head reads the "
        "embedding table) or 4 (int4 blocks, its own copy); a tied head reads a 4-bit table",
    )
    int4.add_argument(
        "--embedding-bits",
        type=int,
        choices=[4, 8],
        metavar="{4,8}",
        help="embedding table: 8 (default: int8 per row) or 4 (int4 blocks of "
        "--embedding-group-size along each row: a smaller bundle, less accurate; a tied LM "
        "head reads it)",
    )
    int4.add_argument(
        "--embedding-group-size",
        type=int,
        metavar="N",
        help="with a 4-bit table: values per scale along each row, a power of two >= 16 "
        "dividing the hidden size (default 32)",
    )
    int4.add_argument(
        "--act-scale",
        action="store_true",
        help="AWQ-style activation-aware scaling from the calibration text before quantizing",
    )
    int4.add_argument(
        "--int8-layers",
        type=_layer_list,
        metavar="LIST",
        help="decoder layers kept at int8 (blocks of 64), comma-separated, negative from the end "
        "(default 0 for --int4 alone, none with --method); 'none' for none",
    )
    int4.add_argument(
        "--int8-matmuls",
        type=_name_list,
        metavar="LIST",
        help="MatMuls kept at int8 in every layer, e.g. down_proj (q/k/v and gate/up go together)",
    )
    int4.add_argument(
        "--act-order",
        action="store_true",
        help="with --method gptq: solve the columns by decreasing Hessian diagonal (GPTQ's "
        "desc_act; slower, often more accurate on small models)",
    )
    w8a8 = parser.add_argument_group("w8a8 options (SmoothQuant: int8 too)")
    w8a8.add_argument(
        "--calib-method",
        choices=["minmax", "percentile", "entropy"],
        help="activation range calibration (default minmax)",
    )
    w8a8.add_argument(
        "--percentile",
        type=float,
        metavar="P",
        help="with --calib-method percentile: the percentile of |x| (default 99.99)",
    )
    w8a8.add_argument(
        "--smoothquant-alpha",
        type=float,
        metavar="A",
        help="(w8a8 and int8) SmoothQuant migration strength in [0, 1] (default 0.5; "
        "int8 needs it on the CPU, whose int8 kernel quantizes activations)",
    )
    w8a8.add_argument(
        "--no-smoothquant",
        action="store_true",
        help="no SmoothQuant migration",
    )
    w8a8.add_argument(
        "--exclude",
        action="append",
        metavar="SUBSTRING",
        default=None,
        help="keep MatMuls whose node name contains SUBSTRING in float (repeatable; "
        "attention score/value products are never quantized)",
    )
    parser.add_argument(
        "--quantize-embedding",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also quantize the embedding table (int8 per row) and the LM head "
        "(default: on); --no-quantize-embedding keeps both float",
    )
    parser.add_argument(
        "--calib",
        type=Path,
        metavar="TEXTFILE",
        help="UTF-8 calibration text: int8 clipping, GPTQ Hessians, AWQ scales, W8A8 "
        "activation ranges (default: the built-in calibration text)",
    )
    parser.add_argument(
        "--eval-text",
        type=Path,
        metavar="TEXTFILE",
        help="held-out UTF-8 text for the accuracy check (default: built-in text)",
    )
    parser.add_argument(
        "--eval-tokens",
        type=int,
        default=2048,
        metavar="N",
        help="at most N tokens of the evaluation text (default 2048)",
    )
    parser.add_argument(
        "--max-seq-len",
        type=int,
        metavar="N",
        help="longest context the bundle is made for (default: the model's limit, "
        f"at most {DEFAULT_MAX_SEQ_LEN}; the summary says when it capped the "
        "model's); up to the model's max_position_embeddings",
    )
    trt = parser.add_argument_group(
        "TensorRT (on the device; same as running edge-engine on the bundle)"
    )
    trt.add_argument(
        "--trt",
        action="store_true",
        help="also build a TensorRT engine into the bundle from model.onnx (int8 kernels for "
        "int8/w8a8 bundles, FP16 kernels unless --fp32); needs JetPack's TensorRT bindings. "
        "The bundle is the same with or without it: every int8/int4 bundle's model.onnx is "
        "already in TensorRT's form",
    )
    trt.add_argument(
        "--timing-cache",
        type=Path,
        metavar="FILE",
        help="with --trt: read and update this TensorRT timing cache (faster rebuilds)",
    )
    trt.add_argument(
        "--workspace-mb",
        type=int,
        metavar="N",
        help="with --trt: builder workspace cap in MB (default: from the planner for the "
        "detected module)",
    )
    parser.add_argument(
        "--no-ort-graph",
        action="store_true",
        help="do not write model.ort.onnx, the CPU graph with fused attention and int8 blocks "
        "(about 2x the CPU decode speed; the weights again on disk); GPU/TensorRT use model.onnx "
        "(int8 per output channel), gated then with float activations as they compute",
    )
    parser.add_argument(
        "--cuda-graph",
        action="store_true",
        help="also write model.cuda.onnx: the fused graph with fp16 activations and KV cache "
        "for onnxruntime's CUDA EP (its int blocks shared with model.ort.onnx.data; adds the "
        "fp16 scales, 3-4%% of the fused graph's bytes), checked on the CPU EP against "
        "the fused graph",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="keep a quantized export whose accuracy is below the threshold",
    )
    parser.add_argument(
        "--no-eval",
        action="store_true",
        help="skip the accuracy evaluation and its gate (for random-weight models, e.g. size "
        "tests; the bundle then records no accuracy figures, and the summary says so)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    add_common_flags(parser)
    return parser


def _layer_list(text: str) -> tuple[int, ...]:
    if text.strip().lower() == "none":
        return ()
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected layer indices such as 0,-1 (or none), got {text!r}"
        ) from None


def _name_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def quant_config(args: argparse.Namespace) -> QuantConfig:
    """The :class:`QuantConfig` the flags describe; a flag that does not apply is a usage error."""
    flags = {
        "--method": args.method,
        "--group-size": args.group_size,
        "--act-scale": args.act_scale or None,
        "--act-order": args.act_order or None,
        "--lm-head-bits": args.lm_head_bits,
        "--embedding-bits": args.embedding_bits,
        "--embedding-group-size": args.embedding_group_size,
        "--int8-layers": args.int8_layers,
        "--int8-matmuls": args.int8_matmuls,
        "--calib-method": args.calib_method,
        "--percentile": args.percentile,
        "--smoothquant-alpha": args.smoothquant_alpha,
        "--no-smoothquant": args.no_smoothquant or None,
        "--exclude": args.exclude,
    }
    allowed = {
        "int4": {
            "--method",
            "--group-size",
            "--act-scale",
            "--act-order",
            "--lm-head-bits",
            "--embedding-bits",
            "--embedding-group-size",
            "--int8-layers",
            "--int8-matmuls",
        },
        "int8": {"--group-size", "--smoothquant-alpha", "--no-smoothquant"},
        "w8a8": {
            "--calib-method",
            "--percentile",
            "--smoothquant-alpha",
            "--no-smoothquant",
            "--exclude",
        },
    }
    wrong = [
        flag
        for flag, value in flags.items()
        if value is not None and flag not in allowed.get(args.precision, ())
    ]
    if wrong:
        raise ConfigError(f"{', '.join(wrong)} cannot be used with --{args.precision}")
    if args.cuda_graph and args.precision in ("fp16", "w8a8"):
        raise ConfigError(f"--cuda-graph is made for fp32, int8 and int4 (not --{args.precision})")
    if args.cuda_graph and args.no_ort_graph:
        raise ConfigError("--cuda-graph is made from model.ort.onnx: drop --no-ort-graph")
    if not args.trt and (args.timing_cache or args.workspace_mb is not None):
        raise ConfigError("--timing-cache and --workspace-mb apply only with --trt")
    if args.smoothquant_alpha is not None and args.no_smoothquant:
        raise ConfigError("--smoothquant-alpha and --no-smoothquant contradict each other")
    fields: dict[str, Any] = {  # QuantConfig checks each value
        "method": args.precision,
        "quantize_embedding": args.quantize_embedding,
    }
    if args.precision == "int4":
        fields.update(INT4_DEFAULT if args.method is None else {"method": args.method})
    if args.int8_layers is not None:
        fields["int8_layers"] = args.int8_layers
    if args.int8_matmuls is not None:
        fields["int8_matmuls"] = args.int8_matmuls
    optional = {
        "group_size": args.group_size,
        "calib_method": args.calib_method,
        "percentile": args.percentile,
        "smoothquant_alpha": args.smoothquant_alpha,
        "lm_head_bits": args.lm_head_bits,
        "embedding_bits": args.embedding_bits,
        "embedding_group_size": args.embedding_group_size,
    }
    fields.update({key: value for key, value in optional.items() if value is not None})
    if args.act_scale:
        fields["act_scale"] = True
    if args.act_order:
        fields["gptq_act_order"] = True
    if args.no_smoothquant:
        fields["smoothquant_alpha"] = None
    if args.exclude:
        fields["exclude"] = tuple(args.exclude)
    return QuantConfig(**fields)


def _run(args: argparse.Namespace) -> int:
    for module in ("torch", "onnx"):  # the export extra: one line naming it, not a traceback
        require(module, "edge-export")
    from edge_sdk.exporters.export import export, export_stages

    quant = quant_config(args)  # already checked by main(); cheap
    if args.trt:  # fail before minutes of export, not after
        require("tensorrt", "edge-export --trt (building a TensorRT engine)")
    name = quant.label if quant.precision in ("int4", "w8a8") else quant.precision
    model = Path(args.model)
    output = args.output or Path(f"{model.stem if model.is_file() else model.name}-{name}")
    progress = Progress(export_stages(quant) + (5 if args.trt else 0), quiet=args.quiet)
    result = export(
        args.model,
        output,
        quant=quant,
        calib_text=args.calib,
        eval_text=args.eval_text,
        eval_tokens=args.eval_tokens,
        max_seq_len=args.max_seq_len,
        force=args.force,
        ort_graph=not args.no_ort_graph,
        progress=progress,
        revision=args.revision,
        evaluate=not args.no_eval,
    )
    if args.cuda_graph:
        from edge_sdk.exporters.cuda_graph import add_cuda_graph

        result = replace(result, bundle=add_cuda_graph(result.bundle.path))
    progress.done(f"wrote {result.bundle.path}")
    if result.tensorrt is not None and not result.tensorrt.ok:
        sys.stderr.write(
            "warning: the graph is not ready for TensorRT:\n" + result.tensorrt.format() + "\n"
        )
    engine = _build_engine(args, result, progress) if args.trt else None
    if args.json:
        print_json({**summary_dict(result), "engine": engine})
    else:
        sys.stdout.write(summary_text(result))
        if engine:
            sys.stdout.write(
                f"engine     {engine['file']}: TensorRT {engine['tensorrt']}, {engine['gpu']} "
                f"(sm {engine['compute_capability']}), built in {engine['build_seconds']} s\n"
            )
    return EXIT_OK


def _build_engine(
    args: argparse.Namespace, result: ExportResult, progress: Progress
) -> dict[str, object]:
    from edge_sdk.exporters.tensorrt.build import EngineOptions, build_engine

    options = EngineOptions(
        fp16=result.precision != "fp32",
        workspace_mb=args.workspace_mb,
        timing_cache=args.timing_cache,
    )
    return build_engine(result.bundle.path, options, progress).record


def summary_dict(result: ExportResult) -> dict[str, object]:
    """The export's outcome as a JSON-ready dict."""
    return {
        "bundle": str(result.bundle.path),
        "precision": result.precision,
        "quant": result.quant.to_dict() if result.quant else None,
        "onnx_bytes": result.onnx_bytes,
        "float32_weight_bytes": result.float_weight_bytes,
        "parity_vs_pytorch": result.parity.worst,
        "accuracy": result.accuracy.to_dict() if result.accuracy else None,
        "fused_graph_accuracy": _fused_accuracy(result),
        "tensorrt_compatible": result.tensorrt.ok if result.tensorrt else None,
        "max_sequence_length": result.bundle.max_sequence_length,
        "model_max_position_embeddings": result.bundle.config.max_position_embeddings,
        "context_capped": result.context_capped,
        "fused_graph": bool(result.bundle.manifest["onnxruntime"].get("fused_graph")),
        "fused_graph_skipped": result.bundle.manifest["onnxruntime"].get("fused_graph_skipped"),
        "cuda_graph": result.bundle.manifest["onnxruntime"].get("cuda_graph"),
        "cuda_graph_skipped": result.bundle.manifest["onnxruntime"].get("cuda_graph_skipped"),
        "notes": list(result.notes),
        "seconds": round(result.seconds, 2),
        "peak_rss_bytes": result.peak_rss_bytes,
    }


def _context_line(result: ExportResult) -> str:
    held = result.bundle.max_sequence_length
    supported = result.bundle.config.max_position_embeddings
    if held == supported:
        return f"context    {held} tokens (the model's limit)"
    if result.requested_max_seq_len is not None:
        return f"context    {held} tokens (--max-seq-len; the model supports {supported})"
    return (
        f"context    {held} tokens, capped (the model supports {supported}): pass "
        f"--max-seq-len N (up to {supported}) to raise it"
    )


def _fused_line(result: ExportResult) -> str:
    from edge_sdk.exporters.fused_graph import ORT_GRAPH_FILE  # needs torch
    from edge_sdk.exporters.fused_graph_check import GRAPH_TOLERANCE

    onnxruntime = result.bundle.manifest["onnxruntime"]
    fused, skipped = onnxruntime.get("fused_graph"), onnxruntime.get("fused_graph_skipped", "")
    if fused:
        line = (
            f"ort graph  {fused['file']}: fused attention for onnxruntime's CPU EP (the "
            "runtime's ort-cpu default)"
        )
        cuda, not_built = onnxruntime.get("cuda_graph"), onnxruntime.get("cuda_graph_skipped")
        if not_built:
            line += f"\ncuda graph NOT BUILT: {not_built}; serve it on the CPU or TensorRT"
        if cuda:
            check = cuda["cpu_check"]
            line += (
                f"\ncuda graph {cuda['file']}: fp16, for onnxruntime's CUDA EP (top-1 "
                f"{check['top1_agreement']:.3f} vs the fused graph over {check['positions']} "
                "tokens on the CPU EP)"
            )
        return line
    if result.precision not in GRAPH_TOLERANCE:
        return f"ort graph  {skipped}"
    if skipped.startswith("not asked for"):
        return (
            f"ort graph  {skipped}: ort-cpu runs model.onnx, about half the fused graph's "
            "decode speed"
        )
    return (
        f"ort graph  NOT BUILT: {skipped}; ort-cpu runs the standard model.onnx, about half "
        f"the decode speed of {ORT_GRAPH_FILE}"
    )


def _fused_accuracy(result: ExportResult) -> dict[str, Any] | None:
    """The fused graph's accuracy figures (and its file), when the bundle has them."""
    fused = result.bundle.manifest["onnxruntime"].get("fused_graph") or {}
    figures = fused.get("quantized_vs_float")
    return {**figures, "file": fused["file"]} if figures else None


def summary_text(result: ExportResult) -> str:
    """A short readable summary of the export."""
    mb = 1e6
    lines = [
        f"bundle     {result.bundle.path}",
        f"precision  {result.precision}" + (f" ({result.quant.label})" if result.quant else ""),
        f"model      {result.onnx_bytes / mb:.2f} MB ONNX "
        f"({result.onnx_bytes / result.float_weight_bytes:.2f} x the float32 weights, "
        f"{result.float_weight_bytes / mb:.2f} MB)",
        f"parity     ONNX vs PyTorch relative logit difference {result.parity.worst:.1e}",
    ]
    lines += [
        _context_line(result),
        _fused_line(result),
        f"resources  {result.seconds:.1f} s, peak memory (RSS) "
        f"{result.peak_rss_bytes / 1e9:.2f} GB",
    ]
    if result.tensorrt is not None:
        lines.append(
            "tensorrt   "
            + (
                "graph passes the TensorRT compatibility check (edge-engine --check)"
                if result.tensorrt.ok
                else "graph FAILS the TensorRT check (see stderr)"
            )
        )
    acc = result.accuracy
    if acc:
        fused = _fused_accuracy(result)
        name = "model.onnx " if fused else ""
        lines += [
            f"accuracy   {name}top-1 agreement {acc.top1_agreement:.3f}, perplexity "
            f"{acc.perplexity_float:.3f} -> "
            f"{acc.perplexity_quantized:.3f} (x{acc.perplexity_ratio:.4f}), mean KL "
            f"{acc.mean_kl_divergence:.2e}",
        ]
        if fused:
            lines.append(
                f"           {fused['file']} top-1 agreement {fused['top1_agreement']:.3f}, "
                f"perplexity -> {fused['perplexity_quantized']:.3f} "
                f"(x{fused['perplexity_ratio']:.4f}), mean KL {fused['mean_kl_divergence']:.2e}"
            )
        gate = acc.gate
        if fused and fused["gate"] != acc.gate:
            gate = f"{acc.gate} (model.onnx), {fused['gate']} ({fused['file']})"
        lines.append(f"           on {acc.tokens} tokens of {acc.text_source}; gate: {gate}")
    elif result.precision != "fp32":
        lines.append("accuracy   not evaluated (--no-eval): no figures, no gate")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``edge-export``."""
    parser = build_parser()
    args = parser.parse_args(argv)  # exits 2 on bad usage
    try:
        quant_config(args)
    except ConfigError as exc:  # flags that contradict each other are bad usage too
        parser.error(str(exc))
    if args.revision is not None and (Path(args.model).exists() or not is_hub_id(args.model)):
        parser.error(
            f"--revision applies to a Hugging Face hub id (owner/name); {args.model} "
            "is a local path"
        )
    return run_command(_run, parser, argv)


if __name__ == "__main__":
    sys.exit(main())
