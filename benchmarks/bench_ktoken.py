"""What a k-token model call costs against a 1-token call (issue 24 item 0).

    python benchmarks/bench_ktoken.py NAME=BUNDLE [NAME=BUNDLE ...]
        [--ks 1,2,4,8,16] [--prompt 64] [--repeats 12] [--threads 1,2] [--spin on,off]
        [--accuracy-level 4,1] [--variant KEY=VALUE[,KEY=VALUE]] [--profile N] [--all-logits]
        [--json OUT]

For each bundle, one ``ort-cpu`` backend (the fused graph, as the runtime runs it) per setting
(threads x spinning x accuracy level x variant) is loaded with :func:`edge_sdk.runtime.load`; a
``--prompt``-token prompt is prefilled once, then every repeat times ``backend.forward`` of k
tokens (``--all-logits``: ``backend.forward_all``, every row's logits, as a speculative
verification asks) for each k in ``--ks`` on top of it, truncating the cache back to the prompt
(``backend.truncate``) after each call. Repeats are interleaved: each round visits every setting
of a bundle (pausing ``--settle`` seconds between settings so a spinning pool goes idle) and every
k (in a rotated order); the table reports medians and each k's ratio to k=1. Speculative
verification, batched decode and prefill all rest on this ratio: reading the weights once for k
rows should make it close to 1.

``--spin``: onnxruntime's ``session.intra_op.allow_spinning`` (on: the default, pool threads spin
between parallel sections). ``--accuracy-level``: ``session.qdq_matmulnbits_accuracy_level``, the
fused MatMulNBits' compute type (4: int8 dot products, the exporter's setting; below 4: float, and
8-bit weights then dequantize the whole matrix every call); default: the bundle's own.
``--variant``: more onnxruntime session config entries, compared with none (for example
``--variant session.dynamic_block_base=4``). ``--profile N``: after the timings, each session is
reopened with onnxruntime's profiler and each op type's kernel ms per k is reported (median of N
calls; profiled timings are not the table's). The header and the JSON record the CPU, its ISA
flags, onnxruntime's version and the load average.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from host import host_info, host_line

from edge_sdk.board import read_load_average
from edge_sdk.runtime import load

SPIN_KEY = "session.intra_op.allow_spinning"
LEVEL_KEY = "session.qdq_matmulnbits_accuracy_level"


@dataclass(frozen=True)
class Setting:
    """One backend configuration of one bundle."""

    model: str
    threads: int
    spin: bool
    accuracy_level: str | None  # None: the bundle's own
    extra: tuple[tuple[str, str], ...] = ()  # --variant: more session config entries

    @property
    def session_config(self) -> dict[str, str]:
        config = {SPIN_KEY: "1" if self.spin else "0"}
        if self.accuracy_level is not None:
            config[LEVEL_KEY] = self.accuracy_level
        return config | dict(self.extra)

    @property
    def label(self) -> str:
        level = f" level {self.accuracy_level}" if self.accuracy_level else ""
        extra = "".join(f" {key}={value}" for key, value in self.extra)
        return f"{self.model} t{self.threads} spin {'on' if self.spin else 'off'}{level}{extra}"


def precision_of(bundle: Path) -> str:
    """The manifest's precision and weight block size (``int4-g128``; ``-g0``: per channel)."""
    precision = json.loads((bundle / "manifest.json").read_text()).get("precision") or {}
    name = str(precision.get("name", "?"))
    group = (precision.get("config") or {}).get("group_size")
    return name if group is None else f"{name}-g{group}"


def measure_bundle(
    name: str,
    bundle: Path,
    settings: Sequence[Setting],
    ks: Sequence[int],
    prompt: int,
    repeats: int,
    settle_s: float = 0.05,
    profile: int = 0,
    log: Callable[[str], None] = print,
    all_logits: bool = False,
) -> list[dict[str, Any]]:
    """Interleaved k-token timings of ``bundle`` under each setting: one row per setting with
    the median ms per k, each k's ratio to k=1 and the raw samples (and with ``profile`` > 0,
    :func:`profile_ops` of that many calls per k, after the timings). ``all_logits``: time
    ``backend.forward_all`` (every row's logits, as a speculative verification needs) instead of
    ``backend.forward`` (the last row's)."""
    capacity = prompt + max(ks) + 8
    rng = np.random.default_rng(0)
    generators = []
    for setting in settings:
        started = time.perf_counter()
        generator = load(
            bundle,
            "ort-cpu",
            threads=setting.threads,
            session_config=setting.session_config,
            max_context=capacity,
        )
        backend = generator.backend
        backend.allocate(capacity)
        vocab = int(generator.bundle.manifest["model"]["config"]["vocab_size"])
        prompt_ids = rng.integers(1, min(vocab, 2000), prompt).astype(np.int64)
        backend.forward(prompt_ids)
        generators.append(generator)
        log(f"loaded {setting.label} ({backend.device}) in {time.perf_counter() - started:.1f} s")
    draft = {k: rng.integers(1, 1000, k).astype(np.int64) for k in ks}
    samples: list[dict[int, list[float]]] = [{k: [] for k in ks} for _ in settings]
    for round_ in range(repeats + 1):  # round 0 warms every shape up, not recorded
        for index, generator in enumerate(generators):
            backend = generator.backend
            run = backend.forward_all if all_logits else backend.forward
            time.sleep(settle_s)  # the last setting's spinning pool goes idle
            order = list(ks[round_ % len(ks) :]) + list(ks[: round_ % len(ks)])
            for k in order:
                started = time.perf_counter()
                run(draft[k])
                elapsed_ms = (time.perf_counter() - started) * 1e3
                if not backend.truncate(prompt):
                    raise SystemExit(f"{name}: the backend cannot truncate its cache")
                if round_:
                    samples[index][k].append(elapsed_ms)
    rows = []
    for setting, generator, got in zip(settings, generators, samples, strict=True):
        median_ms = {k: statistics.median(v) for k, v in got.items()}
        base = median_ms[ks[0]]
        rows.append(
            {
                "model": setting.model,
                "bundle": str(bundle),
                "precision": precision_of(bundle),
                "threads": setting.threads,
                "spin": setting.spin,
                "accuracy_level": setting.accuracy_level,
                "variant": dict(setting.extra),
                "graph": generator.backend.device,
                "logits": "all" if all_logits else "last",
                "median_ms": median_ms,
                "ratio_to_k1": {k: v / base for k, v in median_ms.items()},
                "samples_ms": got,
            }
        )
        if profile:
            ops = profile_ops(generator, ks, prompt, profile)
            rows[-1]["profile_ms"] = ops
            log(profile_table(setting.label, ops, ks))
        generator.close()
    return rows


def profile_ops(generator: Any, ks: Sequence[int], prompt: int, calls: int) -> dict[str, Any]:
    """onnxruntime's per-op profile of ``calls`` k-token calls per k: the median over calls of
    each op type's summed kernel time, in ms ({op: {k: ms}}). The session is reopened with
    profiling on (its timings are then slower: this pass is separate from the table's)."""
    backend = generator.backend
    plain = backend.session_options
    folder = Path(tempfile.mkdtemp(prefix="bench-ktoken-"))

    def profiled() -> Any:
        options = plain()
        options.enable_profiling = True
        options.profile_file_prefix = str(folder / "profile")
        return options

    backend.session_options = profiled  # this instance only
    backend._open_session()  # the cache buffers stay; the new binding is made on the next call
    rng = np.random.default_rng(1)
    order: list[int] = []
    for k in ks:
        ids = rng.integers(1, 1000, k).astype(np.int64)
        for _ in range(calls + 1):  # the first call of each shape is not counted
            backend.forward(ids)
            backend.truncate(prompt)
            order.append(k)
    events = json.loads(Path(backend.session.end_profiling()).read_text())
    shutil.rmtree(folder, ignore_errors=True)
    runs = [e for e in events if e.get("name") == "model_run"]
    nodes = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    if len(runs) != len(order):
        return {"error": f"{len(runs)} model_run events for {len(order)} calls"}
    per_run: list[dict[str, float]] = [{} for _ in runs]
    starts = [run["ts"] for run in runs]
    for node in nodes:
        index = int(np.searchsorted(starts, node["ts"], side="right")) - 1
        if index >= 0:
            op = node["args"].get("op_name", "?")
            per_run[index][op] = per_run[index].get(op, 0.0) + node["dur"] / 1e3
    ops = sorted({op for run in per_run for op in run})
    result: dict[str, Any] = {op: {} for op in [*ops, "total"]}
    for k in ks:
        got = [run for run, kk in zip(per_run, order, strict=True) if kk == k][1:]
        for op in ops:
            result[op][k] = statistics.median(run.get(op, 0.0) for run in got)
        result["total"][k] = statistics.median(sum(run.values()) for run in got)
    return result


def profile_table(label: str, ops: dict[str, Any], ks: Sequence[int]) -> str:
    """One line per op type: ms at each k and the largest k's ratio to k=1."""
    if "error" in ops:
        return f"{label}: profile failed: {ops['error']}"
    lines = [f"{label}: per-op kernel ms (onnxruntime profile, median) at k = {list(ks)}"]
    ranked = sorted(ops.items(), key=lambda item: -item[1][ks[-1]])
    for op, ms in ranked:
        base = ms[ks[0]] or float("nan")
        cells = " ".join(f"{ms[k]:7.2f}" for k in ks)
        lines.append(f"  {op:34} {cells}   k={ks[-1]}/k=1 {ms[ks[-1]] / base:5.2f}x")
    return "\n".join(lines)


def table(rows: Sequence[dict[str, Any]], ks: Sequence[int]) -> str:
    """Markdown: k=1 ms, then each k's ratio, one row per (model, precision, threads, spin)."""
    head = "| model | precision | threads | spin | level | variant | k=1 ms | "
    head += " | ".join(f"k={k}" for k in ks[1:]) + " |"
    lines = [head, "|" + "---|" * (6 + len(ks))]
    for row in rows:
        ratios = " | ".join(f"{row['ratio_to_k1'][k]:.2f}x" for k in ks[1:])
        lines.append(
            f"| {row['model']} | {row['precision']} | {row['threads']} | "
            f"{'on' if row['spin'] else 'off'} | {row['accuracy_level'] or 'bundle'} | "
            f"{' '.join(f'{k}={v}' for k, v in row['variant'].items()) or '-'} | "
            f"{row['median_ms'][ks[0]]:.2f} | {ratios} |"
        )
    return "\n".join(lines)


def _bundles(specs: Sequence[str]) -> dict[str, Path]:
    bundles = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        bundle = Path(path if sep else name)
        if not (bundle / "manifest.json").is_file():
            raise SystemExit(f"{bundle} is not a bundle (no manifest.json): give NAME=BUNDLE_DIR")
        bundles[name if sep else bundle.name] = bundle
    return bundles


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundles", nargs="+", help="NAME=BUNDLE_DIR (or just BUNDLE_DIR)")
    parser.add_argument("--ks", type=_ints, default=[1, 2, 4, 8, 16], help="tokens per call")
    parser.add_argument("--prompt", type=int, default=64, help="tokens in the cache under them")
    parser.add_argument("--repeats", type=int, default=12)
    parser.add_argument("--threads", type=_ints, default=[2], help="comma list, e.g. 1,2")
    parser.add_argument("--spin", default="on", help="comma list of on/off")
    parser.add_argument(
        "--accuracy-level", default="", help="comma list of MatMulNBits levels (default: bundle's)"
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="KEY=VALUE[,KEY=VALUE]: also run with these session config entries (repeatable; "
        "each is compared, interleaved, with no extra entries)",
    )
    parser.add_argument("--settle", type=float, default=0.05, help="seconds between settings")
    parser.add_argument(
        "--profile", type=int, default=0, help="N: onnxruntime per-op profile of N calls per k"
    )
    parser.add_argument(
        "--all-logits",
        action="store_true",
        help="time forward_all (every row's logits: a speculative verification) instead of "
        "forward (the last row's)",
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    spins = [part.strip() for part in args.spin.split(",") if part.strip()]
    if not set(spins) <= {"on", "off"}:
        parser.error("--spin takes on, off or on,off")
    if not args.ks or args.ks[0] != 1 or any(k < 1 for k in args.ks):
        parser.error("--ks must start with 1 (the ratios are to k=1)")
    levels: list[str | None] = [p for p in args.accuracy_level.split(",") if p] or [None]
    variants: list[tuple[tuple[str, str], ...]] = [()]
    for text in args.variant:
        pairs = [part.partition("=") for part in text.split(",") if part]
        if any(not key or not sep for key, sep, _ in pairs):
            parser.error(f"--variant {text!r}: give KEY=VALUE[,KEY=VALUE]")
        variants.append(tuple((key, value) for key, _, value in pairs))
    bundles = _bundles(args.bundles)
    host = host_info()
    print(host_line(host), flush=True)
    rows: list[dict[str, Any]] = []
    for name, bundle in bundles.items():
        settings = [
            Setting(name, threads, spin == "on", level, variant)
            for threads in args.threads
            for spin in spins
            for level in levels
            for variant in variants
        ]
        rows += measure_bundle(
            name,
            bundle,
            settings,
            args.ks,
            args.prompt,
            args.repeats,
            args.settle,
            args.profile,
            all_logits=args.all_logits,
        )
    host["loadavg_after"] = read_load_average() or "?"
    call = "forward_all (every row's logits)" if args.all_logits else "forward"
    print(f"{call} of k tokens after {args.prompt}, medians of {args.repeats} interleaved")
    print(table(rows, args.ks))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        report = {"host": host, "args": vars(args) | {"json": str(args.json)}, "rows": rows}
        args.json.write_text(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
