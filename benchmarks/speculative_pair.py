"""The draft/target pair that ``bench_speculative.py`` measures the draft-model drafter on.

    python benchmarks/speculative_pair.py [--work DIR] [--size medium] [--steps 300] [--repeats 5]

- draft: the packaged demo model (``exporters/demo/model.pt``: ~2 M parameters, hidden 192,
  4 layers), exported int8;
- target: the same family's ``medium`` size (26.7 M parameters, hidden 384, 12 layers) trained on
  the same story corpus by ``python -m edge_sdk.exporters.demo.train --size medium --steps 300
  --batch 8 --threads 1`` (9.4 min of CPU on one thread; cached in ``--work``, never
  committed), exported int8.

``train.py`` trains its tokenizer deterministically on the corpus, so both checkpoints carry the
same ``tokenizer.json``; :func:`prepare_pair` checks it by SHA-256 of the two bundles' files and
stops when they differ. Run as a script, it prints both bundles' greedy decode ms per token
(interleaved, medians) and the draft/target cost ratio.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge_sdk.exporters import demo_checkpoint_path, export
from edge_sdk.runtime import load

DEFAULT_WORK = Path("/tmp/edge-sdk-bench")
TARGET_SIZE = "medium"
TARGET_STEPS = 300
TARGET_BATCH = 8


@dataclass(frozen=True)
class Pair:
    """Two int8 bundles with one tokenizer: ``draft`` (the demo) and ``target`` (larger)."""

    draft: Path
    target: Path
    tokenizer_sha256: str


def train_target(
    work: Path,
    size: str = TARGET_SIZE,
    steps: int = TARGET_STEPS,
    batch: int = TARGET_BATCH,
    threads: int = 1,
    log: Callable[[str], None] = print,
) -> Path:
    """The target checkpoint, trained once into ``work`` by the demo's training command."""
    path = work / f"{size}-{steps}-b{batch}.pt"
    if path.is_file():
        return path
    work.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "edge_sdk.exporters.demo.train",
        *("--size", size, "--steps", str(steps), "--batch", str(batch)),
        *("--threads", str(threads), "-o", str(path)),
    ]
    log(f"training the target ({' '.join(command[1:])}) ...")
    subprocess.run(command, check=True)
    return path


def export_int8(checkpoint: Path, out: Path, log: Callable[[str], None] = print) -> Path:
    """``checkpoint`` exported to an int8 bundle at ``out``, once (its accuracy gate applies)."""
    if not (out / "manifest.json").is_file():
        log(f"exporting {checkpoint.name} to {out} (int8) ...")
        export(checkpoint, out, "int8")
    return out


def tokenizer_sha256(bundle: Path) -> str:
    """SHA-256 of the bundle's ``tokenizer.json``."""
    return hashlib.sha256((bundle / "tokenizer.json").read_bytes()).hexdigest()


def prepare_pair(
    work: Path = DEFAULT_WORK,
    size: str = TARGET_SIZE,
    steps: int = TARGET_STEPS,
    batch: int = TARGET_BATCH,
    threads: int = 1,
    log: Callable[[str], None] = print,
) -> Pair:
    """Make (once) both bundles in ``work`` and check that they share a tokenizer."""
    draft = export_int8(demo_checkpoint_path(), work / "pair-draft-demo-int8", log)
    checkpoint = train_target(work, size, steps, batch, threads, log)
    target = export_int8(checkpoint, work / f"pair-target-{checkpoint.stem}-int8", log)
    digest = tokenizer_sha256(draft)
    if tokenizer_sha256(target) != digest:
        raise SystemExit(
            f"{target} and {draft} have different tokenizer.json files: delete {checkpoint} "
            "and rerun (train.py must rebuild the demo's tokenizer)"
        )
    return Pair(draft, target, digest)


def decode_ms(
    bundles: dict[str, Path], tokens: int = 128, repeats: int = 5, threads: int = 1
) -> dict[str, float]:
    """Median greedy decode ms per token of each bundle (runtime ``ort-cpu``), interleaved."""
    generators = {name: load(path, "ort-cpu", threads=threads) for name, path in bundles.items()}
    samples: dict[str, list[float]] = {name: [] for name in bundles}
    for _ in range(repeats + 1):  # the first round warms up, not recorded
        for name, generator in generators.items():
            stats = generator.generate(
                "Once upon a time", max_new_tokens=tokens, ignore_eos=True, cache_prompt=False
            ).stats
            samples[name].append(1e3 / stats.decode_tokens_per_s)
    for generator in generators.values():
        generator.close()
    return {name: statistics.median(values[1:]) for name, values in samples.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help="cache folder")
    parser.add_argument(
        "--size", choices=["small", "medium"], default=TARGET_SIZE, help="target's size"
    )
    parser.add_argument("--steps", type=int, default=TARGET_STEPS, help="target training steps")
    parser.add_argument("--batch", type=int, default=TARGET_BATCH, help="target batch size")
    parser.add_argument("--train-threads", type=int, default=1, help="torch threads")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads (timing)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    pair = prepare_pair(args.work, args.size, args.steps, args.batch, args.train_threads)
    print(f"draft  {pair.draft}\ntarget {pair.target}\ntokenizer sha256 {pair.tokenizer_sha256}")
    ms = decode_ms(
        {"draft": pair.draft, "target": pair.target}, repeats=args.repeats, threads=args.threads
    )
    print(
        f"decode ms/token (threads {args.threads}): draft {ms['draft']:.3f}, "
        f"target {ms['target']:.3f}, draft/target {ms['draft'] / ms['target']:.3f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
