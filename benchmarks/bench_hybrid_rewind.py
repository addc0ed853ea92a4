"""What speculative decoding's rewind costs on a hybrid model (Qwen3.5), call by call.

    python benchmarks/bench_hybrid_rewind.py NAME=BUNDLE [NAME=BUNDLE ...]
        [--ks 2,4] [--prompt 64] [--repeats 9] [--threads 2] [--json OUT]

A hybrid model's linear-attention layers keep a recurrent state that a length cannot cut back,
so a verify step (the pending token and k drafts in one call) on such a model is, in the
generator (runtime/README.md, "Speculative decoding"): ``Backend.checkpoint()`` (a copy of the
states), ``forward_all`` of k + 1 tokens, and after a partial accept of a drafts,
``truncate`` back to the checkpoint (the states copied back) and a re-run of the a + 1 accepted
tokens in one call. On one ``ort-cpu`` backend (the fused graph) with a ``--prompt``-token prompt
in the cache, each round times, in a rotated order: a one-token decode, and for each k the
checkpoint, the verify call and the rewind + re-run for every a in 0 .. k - 1, cutting back to
the prompt after each (medians of ``--repeats`` rounds after one warm-up). The table gives each
in ms and a partial accept's whole step against a full accept's (checkpoint + verify). The
header and the JSON record the host.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ktoken import _bundles, _ints
from host import host_info, host_line

from edge_sdk.runtime import load


def measure(
    bundle: Path, ks: list[int], prompt: int, repeats: int, threads: int
) -> dict[str, float]:
    """Median ms of each step (see the module docstring)."""
    generator = load(bundle, "ort-cpu", threads=threads)
    backend = generator.backend
    if backend.speculation_problem() is not None:
        raise SystemExit(f"{bundle}: {backend.speculation_problem()}")
    backend.allocate(prompt + max(ks) + 8)
    rng = np.random.default_rng(0)
    backend.forward(rng.integers(1, 1000, prompt))
    backend.checkpoint()  # the prompt's states: every step below is cut back to them

    def back() -> None:
        if not backend.truncate(prompt):
            raise SystemExit(f"{bundle}: the cache could not go back to the prompt")
        backend.checkpoint()

    def timed(call: Any) -> float:
        began = time.perf_counter()
        call()
        return (time.perf_counter() - began) * 1e3

    samples: dict[str, list[float]] = {"decode": []}
    for k in ks:
        samples[f"checkpoint k={k}"], samples[f"verify k={k}"] = [], []
        samples.update({f"rewind k={k} a={a}": [] for a in range(k)})
    steps = ["decode", *ks]
    for round_ in range(repeats + 1):
        shift = round_ % len(steps)
        for step in steps[shift:] + steps[:shift]:
            if step == "decode":
                ms = {"decode": timed(lambda: backend.forward(np.array([7])))}
                back()
            else:
                k = int(step)
                ids = rng.integers(1, 1000, k + 1)
                ms = {f"checkpoint k={k}": timed(backend.checkpoint)}
                ms[f"verify k={k}"] = timed(lambda ids=ids: backend.forward_all(ids))
                for a in range(k):

                    def rewind(a: int = a, ids: np.ndarray = ids) -> None:
                        backend.truncate(prompt)  # the checkpoint: the states copied back
                        backend.forward(ids[: a + 1])

                    ms[f"rewind k={k} a={a}"] = timed(rewind)
                back()
            if round_:
                for name, value in ms.items():
                    samples[name].append(value)
        print(f"{bundle.name}: round {round_}/{repeats}", flush=True)
    generator.close()
    return {name: statistics.median(values) for name, values in samples.items()}


def table(name: str, ms: dict[str, float], ks: list[int]) -> str:
    lines = [
        f"{name}: one-token decode {ms['decode']:.2f} ms",
        "| k | checkpoint ms | verify (k+1 rows) ms | a accepted | rewind + re-run ms "
        "| partial step / full step | partial step / decode |",
        "|---|---|---|---|---|---|---|",
    ]
    for k in ks:
        full = ms[f"checkpoint k={k}"] + ms[f"verify k={k}"]
        for a in range(k):
            rewind = ms[f"rewind k={k} a={a}"]
            lines.append(
                f"| {k} | {ms[f'checkpoint k={k}']:.3f} | {ms[f'verify k={k}']:.2f} | {a} | "
                f"{rewind:.2f} | {(full + rewind) / full:.2f}x | "
                f"{(full + rewind) / ms['decode']:.2f}x |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundles", nargs="+", help="NAME=BUNDLE_DIR (a hybrid model's bundle)")
    parser.add_argument("--ks", type=_ints, default=[2, 4], help="drafts per verify call")
    parser.add_argument("--prompt", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if not args.ks or min(args.ks) < 1 or args.repeats < 1 or args.prompt < 1:
        parser.error("--ks, --repeats and --prompt must be at least 1")
    host = host_info()
    print(host_line(host), flush=True)
    results = {}
    for name, bundle in _bundles(args.bundles).items():
        results[name] = measure(bundle, args.ks, args.prompt, args.repeats, args.threads)
        print(table(name, results[name], args.ks))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps({"host": host, "args": vars(args) | {"json": None}, "ms": results})
        )
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
