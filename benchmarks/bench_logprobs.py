"""What log probabilities cost, and how the two CPU graphs' prompt logprobs compare.

For one bundle, on the fused graph (``model.ort.onnx``: a scored prompt runs a token at a time)
and on the standard graph (``model.onnx``: every position from each prefill call):

* prefill of a ``--tokens`` prompt plus one token, plain and with ``prompt_logprobs`` (median of
  ``--repeat`` runs, interleaved);
* decode tok/s of ``--decode`` tokens with ``logprobs`` off, 0 and 20 (interleaved medians), and
  the host time of one token's logprobs (``TokenLogprobs.of`` on a real logits row), which is
  what they add per token;
* with ``--reference`` (an fp32 bundle of the same model), each graph's prompt logprobs against
  the fp32 standard graph's: the sum and the mean and largest per-token difference.

    python benchmarks/bench_logprobs.py BUNDLE [--reference FP32_BUNDLE] [--tokens 128]
        [--decode 64] [--threads 2] [--repeat 3] [--json bench-results/logprobs.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import timeit
from pathlib import Path
from typing import Any

import numpy as np
from host import host_info

from edge_sdk.runtime import Generator, TokenLogprobs, load

TEXT = "Once upon a time, there was a little dog who liked to run in the park with its friends. "


def _seconds(gen: Generator, ids: list[int], **options: Any) -> float:
    start = time.perf_counter()
    gen.generate(ids, max_new_tokens=1, **options)
    return time.perf_counter() - start


def _cost_us(logits: np.ndarray, top: int) -> float:
    """Host microseconds of one token's logprobs with ``top`` alternatives."""
    return 1e6 * timeit.timeit(lambda: TokenLogprobs.of(logits, 0, top), number=200) / 200


def _scores(gen: Generator, ids: list[int]) -> np.ndarray:
    result = gen.generate(ids, max_new_tokens=0, prompt_logprobs=0)
    assert result.prompt_logprobs is not None
    return np.array([e.logprob for e in result.prompt_logprobs[1:]], dtype=np.float64)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    reference = None
    if args.reference:
        with load(args.reference, "ort-cpu", threads=args.threads, fused_graph=False) as gen:
            ids = gen.encode(TEXT * 64)[: args.tokens]
            reference = _scores(gen, ids)
    rows: dict[str, Any] = {}
    for name, fused in (("fused", True), ("standard", False)):
        with load(args.bundle, "ort-cpu", threads=args.threads, fused_graph=fused) as gen:
            ids = gen.encode(TEXT * 64)[: args.tokens]
            gen.generate(ids, max_new_tokens=2)  # warm up
            plain, scored = [], []
            for _ in range(args.repeat):
                plain.append(_seconds(gen, ids))
                scored.append(_seconds(gen, ids, prompt_logprobs=1))
            speeds: dict[str, list[float]] = {"off": [], "0": [], "20": []}
            for _ in range(args.repeat):  # interleaved, so load on the machine hits all three
                for label, k in (("off", None), ("0", 0), ("20", 20)):
                    result = gen.generate(
                        ids[:8], max_new_tokens=args.decode, ignore_eos=True, logprobs=k
                    )
                    speeds[label].append(result.stats.decode_tokens_per_s)
            decode = {label: statistics.median(v) for label, v in speeds.items()}
            logits = np.array(gen.backend.forward(np.asarray(ids[:1])))  # a real row
            row: dict[str, Any] = {
                "logprobs_us_per_token": {str(k): _cost_us(logits, k) for k in (0, 20)},
                "prompt_tokens": len(ids),
                "prefill_ms": 1000 * statistics.median(plain),
                "scored_prefill_ms": 1000 * statistics.median(scored),
                "decode_tok_s": decode,
            }
            if reference is not None:
                scores = _scores(gen, ids)
                diff = np.abs(scores - reference)
                row.update(
                    sum=float(scores.sum()),
                    reference_sum=float(reference.sum()),
                    mean_abs_diff=float(diff.mean()),
                    max_abs_diff=float(diff.max()),
                )
            rows[name] = row
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", type=Path, help="the bundle to measure")
    parser.add_argument("--reference", type=Path, help="an fp32 bundle of the same model")
    parser.add_argument("--tokens", type=int, default=128, help="prompt tokens")
    parser.add_argument("--decode", type=int, default=64, help="decode tokens")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads")
    parser.add_argument("--repeat", type=int, default=3, help="runs per timing (median)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    rows = measure(args)
    print(
        f"{'graph':<10}{'prompt':>7}{'prefill ms':>12}{'scored ms':>11}{'x':>6}"
        f"{'decode tok/s off / 0 / 20':>28}{'sum vs fp32':>22}{'mean|d|':>9}{'max|d|':>8}"
    )
    for name, r in rows.items():
        d = r["decode_tok_s"]
        line = (
            f"{name:<10}{r['prompt_tokens']:>7}{r['prefill_ms']:>12.0f}"
            f"{r['scored_prefill_ms']:>11.0f}{r['scored_prefill_ms'] / r['prefill_ms']:>6.1f}"
            f"{d['off']:>12.1f} / {d['0']:5.1f} / {d['20']:5.1f}"
        )
        if "sum" in r:
            line += (
                f"{r['sum']:>11.3f} / {r['reference_sum']:.3f}"
                f"{r['mean_abs_diff']:>9.4f}{r['max_abs_diff']:>8.3f}"
            )
        print(line)
    for name, r in rows.items():
        us = r["logprobs_us_per_token"]
        print(
            f"{name}: logprobs cost {us['0']:.0f} us per token (top 0), {us['20']:.0f} us (top 20)"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"host": host_info(), "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
