"""Cost of structured output: decode tok/s with a JSON schema against without, in one run.

    python benchmarks/bench_constrained.py                   # the demo int8 bundle (seconds)
    python benchmarks/bench_constrained.py --llama200m       # + the random 200M Llama at int8
    python benchmarks/bench_constrained.py --bundle PATH     # + any bundle (SmolLM2, ...)

For each model and each decoding (greedy; sampled at temperature 0.8 with a seed) the same
prompt runs ``--repeats`` times plain and with ``response_format`` a JSON schema, interleaved
(plain, constrained, plain, ...), and the medians of the runtime's own decode tok/s are compared:
``cost`` is ``1 - constrained / plain``, the median over the pairs of runs (target: at most 10%
on the 200M model); ``best`` compares the fastest run of each; ``profiled`` is the constraint's
own time per token (measured inside the profiled run) over the fastest plain run's time per
token, and ``CPU`` the same with the constraint's thread CPU time: the figure least moved by
other programs on a shared machine; ``proc CPU`` compares the whole process's CPU time per
token (onnxruntime's threads included: with ``--no-spin`` they burn none while idle), the
median over the pairs. The schema is
an array of at least 16 objects (strings, an enum, integers, a nested array), so the output
runs to ``--tokens``; the plain run ignores EOS. A profiled run
after the timed ones splits the constraint's time per token: the greedy check of the most likely
token, the full mask (llguidance's bitmask and its unpacking), applying it, and advancing the
grammar. ``--schemas`` also runs the 22 schemas of the tests on each model (sampled, through
the engine) and counts the outputs that parse and validate. Prints one table; writes JSON
(``--out``) with the CPU's name.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from host import host_info, host_line

from edge_sdk.runtime import Engine, Generator, ResponseFormat, load
from edge_sdk.runtime.constraints import FormatMatcher

SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "kind": {"enum": ["sensor", "motor", "camera"]},
            "id": {"type": "integer"},
            "readings": {"type": "array", "items": {"type": "number"}},
        },
        "required": ["name", "kind", "id", "readings"],
    },
    "minItems": 16,
}
PROMPT = "Once upon a time, the robot listed its parts:"
DECODINGS: dict[str, dict[str, Any]] = {
    "greedy": {},
    "sampled": {"temperature": 0.8, "seed": 7},
}


def demo_bundle(work: Path, log: Callable[[str], None]) -> Path:
    bundle = work / "demo-int8"
    if not (bundle / "manifest.json").is_file():
        from edge_sdk.exporters import demo_checkpoint_path, export

        log("exporting the demo model (int8) ...")
        export(demo_checkpoint_path(), bundle, "int8")
    return bundle


def llama200m_bundle(work: Path, log: Callable[[str], None]) -> Path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_runtime import export_edge, make_llama200m_hf

    return export_edge(make_llama200m_hf(work, log), work / "llama200m-int8", "int8", log=log)


class _Profile:
    """Time spent in each part of :class:`FormatMatcher` over every token of a run: wall seconds
    and this thread's CPU seconds (which a busy machine's preemption does not inflate)."""

    PARTS = ("restrict", "mask", "advance")

    def __init__(self) -> None:
        self.wall = dict.fromkeys(self.PARTS, 0.0)
        self.cpu = dict.fromkeys(self.PARTS, 0.0)
        self.calls = dict.fromkeys(self.PARTS, 0)

    @contextmanager
    def installed(self) -> Iterator[None]:
        originals = {
            "restrict": FormatMatcher.restrict,
            "mask": FormatMatcher.allowed,
            "advance": FormatMatcher.advance,
        }

        def timed(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                wall, cpu = time.perf_counter(), time.thread_time()
                try:
                    return method(*args, **kwargs)
                finally:
                    self.cpu[name] += time.thread_time() - cpu
                    self.wall[name] += time.perf_counter() - wall
                    self.calls[name] += 1

            return wrapper

        FormatMatcher.restrict = timed("restrict", originals["restrict"])  # type: ignore[method-assign]
        FormatMatcher.allowed = timed("mask", originals["mask"])  # type: ignore[method-assign]
        FormatMatcher.advance = timed("advance", originals["advance"])  # type: ignore[method-assign]
        try:
            yield
        finally:
            FormatMatcher.restrict = originals["restrict"]  # type: ignore[method-assign]
            FormatMatcher.allowed = originals["mask"]  # type: ignore[method-assign]
            FormatMatcher.advance = originals["advance"]  # type: ignore[method-assign]

    def per_token_us(self) -> dict[str, float]:
        tokens = max(self.calls["advance"], 1)
        wall, cpu = self.wall, self.cpu
        return {
            "tokens": self.calls["advance"],
            "full_masks": self.calls["mask"],
            "check_and_apply_us": 1e6 * (wall["restrict"] - wall["mask"]) / tokens,
            "mask_us": 1e6 * wall["mask"] / tokens,
            "mask_us_each": 1e6 * wall["mask"] / max(self.calls["mask"], 1),
            "advance_us": 1e6 * wall["advance"] / tokens,
            "total_us": 1e6 * (wall["restrict"] + wall["advance"]) / tokens,
            "total_cpu_us": 1e6 * (cpu["restrict"] + cpu["advance"]) / tokens,
        }


def compare(
    name: str, gen: Generator, tokens: int, repeats: int, log: Callable[[str], None]
) -> dict[str, Any]:
    fmt = ResponseFormat.json_schema(SCHEMA)
    prompt = gen.encode(PROMPT)
    start = time.perf_counter()
    fmt.prepare(gen.tokenizer, gen.bundle.config.vocab_size, gen.eos_token_ids)
    compile_s = time.perf_counter() - start
    gen.generate(prompt, max_new_tokens=8, ignore_eos=True)  # warm-up
    out: dict[str, Any] = {"model": name, "compile_s": compile_s, "decodings": {}}
    for decoding, sampling in DECODINGS.items():
        runs: dict[str, list[float]] = {"plain": [], "constrained": []}
        lengths: list[int] = []
        cpu: dict[str, list[float]] = {"plain": [], "constrained": []}  # process CPU s/token
        for _ in range(repeats):
            for variant, fmt_or_none in (("plain", None), ("constrained", fmt)):
                start = time.process_time()
                result = gen.generate(
                    prompt,
                    max_new_tokens=tokens,
                    ignore_eos=True,
                    response_format=fmt_or_none,
                    **sampling,
                )
                cpu[variant].append((time.process_time() - start) / result.stats.new_tokens)
                runs[variant].append(result.stats.decode_tokens_per_s)
            lengths.append(result.stats.new_tokens)
        profile = _Profile()
        with profile.installed():
            sample = gen.generate(
                prompt, max_new_tokens=tokens, ignore_eos=True, response_format=fmt, **sampling
            )
        plain_tps = statistics.median(runs["plain"])
        constrained_tps = statistics.median(runs["constrained"])
        pair_ratios = [c / p for p, c in zip(runs["plain"], runs["constrained"], strict=True)]
        per_token = profile.per_token_us()
        out["decodings"][decoding] = {
            "plain_tokens_per_s": plain_tps,
            "constrained_tokens_per_s": constrained_tps,
            "ratio": statistics.median(pair_ratios),
            "cost": 1 - statistics.median(pair_ratios),
            "cost_best": 1 - max(runs["constrained"]) / max(runs["plain"]),
            "cost_process_cpu": 1
            - statistics.median(
                p / c for p, c in zip(cpu["plain"], cpu["constrained"], strict=True)
            ),
            "process_cpu_s_per_token": cpu,
            "cost_profiled": per_token["total_us"] * max(runs["plain"]) / 1e6,
            "cost_profiled_cpu": per_token["total_cpu_us"] * max(runs["plain"]) / 1e6,
            "pair_ratios": pair_ratios,
            "runs": runs,
            "constrained_new_tokens": lengths,
            "profile": per_token,
            "sample_text": sample.text[:160],
        }
        log(
            f"  {name} {decoding}: plain {plain_tps:.1f} tok/s, constrained "
            f"{constrained_tps:.1f} tok/s ({lengths} tokens)"
        )
    return out


def validity(name: str, bundle: Path, threads: int, log: Callable[[str], None]) -> dict[str, Any]:
    """The schema set of ``tests/runtime/schemas.py`` on ``bundle``, each sampled once (the
    chat template asks for JSON of that schema): how many outputs are complete, parse and
    validate, and how many ``--tokens`` cut (those need not parse)."""
    import jsonschema

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.runtime.schemas import SCHEMAS

    rows: dict[str, dict[str, Any]] = {}
    gen = load(bundle, "ort-cpu", threads=threads)
    with Engine(gen, slots=4, max_queue=len(SCHEMAS)) as engine:
        requests = {}
        for seed, (key, schema) in enumerate(SCHEMAS.items()):
            ask = f"Reply with JSON that follows this schema: {json.dumps(schema)}"
            requests[key] = engine.submit(
                engine.encode_chat([{"role": "user", "content": ask}]),
                max_new_tokens=300,
                temperature=1.0,
                seed=seed,
                response_format=ResponseFormat.json_schema(schema),
            )
        for key, request in requests.items():
            result = request.wait()
            complete = result.stop_reason in ("stop", "eos")
            try:
                jsonschema.validate(json.loads(result.text), SCHEMAS[key])
                valid = True
            except (ValueError, jsonschema.ValidationError):
                valid = False
            rows[key] = {
                "complete": complete,
                "valid": valid,
                "tokens": result.stats.new_tokens,
                "text": result.text[:120],
            }
    complete = [r for r in rows.values() if r["complete"]]
    summary = {
        "model": name,
        "schemas": len(rows),
        "complete": len(complete),
        "complete_and_valid": sum(r["valid"] for r in complete),
        "cut": len(rows) - len(complete),
        "rows": rows,
    }
    log(
        f"  {name}: {summary['complete_and_valid']}/{summary['complete']} complete outputs "
        f"parse and validate; {summary['cut']} cut at 300 tokens"
    )
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--llama200m", action="store_true", help="also the random 200M Llama")
    parser.add_argument("--bundle", type=Path, action="append", default=[], help="more bundles")
    parser.add_argument(
        "--work",
        type=Path,
        default=Path(tempfile.gettempdir()) / "edge-sdk-bench-constrained",
        help="where models and exports are kept between runs",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--no-spin",
        action="store_true",
        help="onnxruntime's idle threads sleep instead of spinning (on a machine with few cores "
        "their spinning competes with the Python work between model calls)",
    )
    parser.add_argument("--tokens", type=int, default=128, help="new tokens per run")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved runs per variant")
    parser.add_argument(
        "--schemas",
        action="store_true",
        help="also run the 22 test schemas (tests/runtime/schemas.py) on each model and count "
        "the outputs that parse and validate",
    )
    parser.add_argument("--out", type=Path, default=Path("bench_constrained.json"))
    args = parser.parse_args(argv)

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    models = [("demo", demo_bundle(args.work, log))]
    if args.llama200m:
        models.append(("200M int8", llama200m_bundle(args.work, log)))
    models += [(path.name, path) for path in args.bundle]
    results = []
    for name, bundle in models:
        log(f"benchmarking {name} ({args.repeats} interleaved runs per variant) ...")
        config = {"session.intra_op.allow_spinning": "0"} if args.no_spin else None
        with load(bundle, "ort-cpu", threads=args.threads, session_config=config) as gen:
            results.append(compare(name, gen, args.tokens, args.repeats, log))
    checks = []
    if args.schemas:
        checks = [validity(name, bundle, args.threads, log) for name, bundle in models]
    report = {
        "benchmark": "edge-sdk constrained decoding",
        "machine": {
            "host": host_info(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "llguidance": __import__("llguidance").__version__,
            "numpy": np.__version__,
        },
        "threads": args.threads,
        "no_spin": args.no_spin,
        "tokens": args.tokens,
        "repeats": args.repeats,
        "schema": SCHEMA,
        "results": results,
        "schema_checks": checks,
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{host_line(report['machine']['host'])}; {args.threads} threads, {args.tokens} tokens")
    print(
        f"{'model':<14} {'decoding':<8} {'plain tok/s':>11} {'JSON tok/s':>11} {'cost':>7} "
        f"{'best':>7} {'proc CPU':>8} {'profiled':>8} {'CPU':>7} {'masks':>8} {'mask us':>8} "
        f"{'check+apply us':>15} {'advance us':>11}"
    )
    for result in results:
        for decoding, row in result["decodings"].items():
            prof = row["profile"]
            print(
                f"{result['model']:<14} {decoding:<8} {row['plain_tokens_per_s']:11.1f} "
                f"{row['constrained_tokens_per_s']:11.1f} {100 * row['cost']:6.1f}% "
                f"{100 * row['cost_best']:6.1f}% {100 * row['cost_process_cpu']:7.1f}% "
                f"{100 * row['cost_profiled']:7.2f}% "
                f"{100 * row['cost_profiled_cpu']:6.2f}% "
                f"{prof['full_masks']:>4}/{prof['tokens']:<3} {prof['mask_us']:8.1f} "
                f"{prof['check_and_apply_us']:15.1f} {prof['advance_us']:11.1f}"
            )
    for check in checks:
        print(
            f"{check['model']}: {check['complete_and_valid']}/{check['complete']} complete outputs "
            f"of {check['schemas']} schemas parse and validate, {check['cut']} cut at 300 tokens"
        )
    print(f"\nJSON: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
