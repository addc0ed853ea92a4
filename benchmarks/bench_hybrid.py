"""Qwen3.5 (hybrid: Gated DeltaNet + attention) against a Qwen3 of the same shape, in one run.

    python benchmarks/bench_hybrid.py                    # random Qwen3.5-0.8B vs a Qwen3 twin
    python benchmarks/bench_hybrid.py --layers 8 --repeats 3

Both models are random-weight folders (``random_models.py``): ``qwen3.5-0.8b`` and
``qwen3-as-qwen3.5-0.8b`` (every layer attention, the same hidden size, layer count, heads and
MLP), exported int4 (RTN, blocks of 32; random weights, no accuracy gate) and run by this SDK's
runtime on onnxruntime's CPU EP (fused graph, ``--threads``). Per model, interleaved over
``--repeats`` rounds, medians:

- prefill tok/s of a ``--prefill`` token prompt (the chunked delta rule: parallel over the
  prompt, not one token at a time);
- decode tok/s after a 128-token and after a 2048-token context (a linear layer's step reads a
  fixed-size state; only the attention layers read more positions).

Targets (issue 21): Qwen3.5 prefill >= 0.5x the Qwen3 twin's; its decode at 2048 close to its
decode at 128. Writes a JSON next to the table (``--json``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from host import host_info, host_line
from random_models import write_random_hf_folder

from edge_sdk.exporters import QuantConfig, export
from edge_sdk.runtime import load

MODELS = {"qwen3.5": "qwen3.5-0.8b", "qwen3": "qwen3-as-qwen3.5-0.8b"}
CONTEXTS = (128, 2048)


def bundle_of(shape: str, work: Path, layers: int | None, max_seq_len: int) -> Path:
    """An int4 bundle of a random ``shape`` (cached in ``work``)."""
    tag = f"{shape}-{layers or 'all'}l"
    bundle = work / f"{tag}-int4"
    if (bundle / "manifest.json").is_file():
        return bundle
    folder = work / f"{tag}-hf"
    if not (folder / "config.json").is_file():
        print(f"writing a random {shape} ...", flush=True)
        write_random_hf_folder(folder, shape, num_layers=layers)
    started = time.perf_counter()
    quant = QuantConfig(method="rtn", bits=4, group_size=32)
    export(folder, bundle, quant=quant, evaluate=False, max_seq_len=max_seq_len)
    print(f"exported {shape} in {time.perf_counter() - started:.0f} s", flush=True)
    return bundle


def measure(generator: Any, prompts: dict[str, list[int]], tokens: int) -> dict[str, float]:
    """Prefill tok/s of the long prompt, decode tok/s after each context."""
    row = {
        "prefill_tokens_per_s": generator.generate(
            prompts["prefill"], max_new_tokens=1, ignore_eos=True
        ).stats.prefill_tokens_per_s
    }
    for context in CONTEXTS:
        stats = generator.generate(prompts[str(context)], max_new_tokens=tokens, ignore_eos=True)
        row[f"decode_at_{context}_tokens_per_s"] = stats.stats.decode_tokens_per_s
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache/edge-sdk-bench/hybrid")
    parser.add_argument("--layers", type=int, default=None, help="cut both models to N layers")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--prefill", type=int, default=512, help="prompt tokens for prefill")
    parser.add_argument("--tokens", type=int, default=32, help="decoded tokens per measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    capacity = max(CONTEXTS) + args.tokens + 8
    bundles = {
        name: bundle_of(shape, args.work, args.layers, max(capacity, args.prefill + 8))
        for name, shape in MODELS.items()
    }
    rng = np.random.default_rng(0)
    prompts = {"prefill": rng.integers(1, 2000, args.prefill).tolist()}
    prompts |= {str(c): rng.integers(1, 2000, c).tolist() for c in CONTEXTS}
    generators = {
        name: load(path, "ort-cpu", threads=args.threads) for name, path in bundles.items()
    }
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in generators}
    for generator in generators.values():  # warm-up
        measure(generator, {**prompts, "prefill": prompts["prefill"][:64]}, 4)
    for _ in range(args.repeats):
        for name, generator in generators.items():
            samples[name].append(measure(generator, prompts, args.tokens))
    rows: dict[str, dict[str, Any]] = {
        name: {key: statistics.median(s[key] for s in got) for key in got[0]} | {"runs": got}
        for name, got in samples.items()
    }
    for name, generator in generators.items():
        rows[name]["cache_mib_at_capacity"] = generator.backend.cache_bytes / 2**20
        rows[name]["graph"] = generator.backend.device
    hybrid, twin = rows["qwen3.5"], rows["qwen3"]
    ratios = {
        "prefill_qwen3.5_vs_qwen3": hybrid["prefill_tokens_per_s"] / twin["prefill_tokens_per_s"],
        "decode_2048_vs_128_qwen3.5": hybrid["decode_at_2048_tokens_per_s"]
        / hybrid["decode_at_128_tokens_per_s"],
        "decode_2048_vs_128_qwen3": twin["decode_at_2048_tokens_per_s"]
        / twin["decode_at_128_tokens_per_s"],
    }
    host = host_info()
    print(host_line(host))
    print(f"{'model':10} {'prefill':>9} {'dec@128':>9} {'dec@2048':>9} {'cache MiB':>10}")
    for name, row in rows.items():
        print(
            f"{name:10} {row['prefill_tokens_per_s']:9.1f} {row['decode_at_128_tokens_per_s']:9.1f}"
            f" {row['decode_at_2048_tokens_per_s']:9.1f} {row['cache_mib_at_capacity']:10.1f}"
        )
    for key, value in ratios.items():
        print(f"{key}: {value:.2f}x")
    result = {"host": host, "args": vars(args) | {"work": str(args.work)}, "rows": rows}
    if args.json:
        args.json.write_text(json.dumps(result | {"ratios": ratios}, indent=2, default=str))
    for generator in generators.values():
        generator.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
