"""Would a batched verify step pay? (issue 24 item 4.) Batched decode vs verifying drafts for
every busy slot in one call, on the engine's slots, side by side.

    python benchmarks/bench_batched_verify.py NAME=BUNDLE [NAME=BUNDLE ...]
        [--slots 2,4] [--ks 1,2,4] [--prompt 64] [--repeats 9] [--threads 2] [--json OUT]

Today the engine speculates only while one request runs alone; with B busy slots it decodes one
token per slot in one call. A batched verify step would run each slot's pending token and k
drafts, B x (k + 1) rows, in one call. The fused graph takes more than one token per row only
at batch 1, so the verify call is measured by its proxy: one slot's
:meth:`~edge_sdk.runtime.slots.SlotModel.prefill_all` of B x (k + 1) tokens (the same rows
through every weight and the LM head; the attention reads one context instead of B short ones,
a small part of a call at these lengths). For each bundle one :class:`FusedSlotModel` over the
generator's session holds ``max(--slots)`` rows, each prefilled with a ``--prompt``-token
prompt; each round times, in a rotated order, a one-row decode, a B-row decode and each B x
(k + 1)-row call, cutting every slot back to the prompt after each (medians of ``--repeats``
rounds after one warm-up).

A verify step of B slots outputs B x (1 + a + ... + a^k) tokens where ``a`` is the per-token
acceptance, a decode step B, so the verify step pays when (1 + a + ... + a^k) > cost(verify) /
cost(decode): the table gives that ratio, the break-even ``a`` and the gain at a = 0.5 and 0.8
(a hybrid model's re-run after a partial accept not counted). The header and the JSON record the
host (CPU, ISA flags, onnxruntime, load).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ktoken import _bundles, _ints
from host import host_info, host_line

from edge_sdk.runtime import load


def expected_tokens(a: float, k: int) -> float:
    """Tokens a step that checks ``k`` drafts outputs per row: 1 + a + ... + a^k."""
    return sum(a**i for i in range(k + 1))


def break_even(ratio: float, k: int) -> float | None:
    """The acceptance at which ``expected_tokens(a, k)`` reaches ``ratio`` (0: the verify call
    costs no more than the decode; None: not even at 1)."""
    if ratio <= 1.0:
        return 0.0
    if expected_tokens(1.0, k) < ratio:
        return None
    low, high = 0.0, 1.0
    for _ in range(50):
        mid = (low + high) / 2
        low, high = (mid, high) if expected_tokens(mid, k) < ratio else (low, mid)
    return high


def measure(
    bundle: Path,
    slots: Sequence[int],
    ks: Sequence[int],
    prompt: int,
    repeats: int,
    threads: int,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Median ms of each call (see the module docstring) for one bundle."""
    generator = load(bundle, "ort-cpu", threads=threads)
    rows = max(slots)
    capacity = prompt + rows * (max(ks) + 1) + 8
    model = generator.backend.slot_model(rows, capacity)
    if model is None or not model.multi_row:
        raise SystemExit(f"{bundle}: needs the fused graph with logits_to_keep (export it again)")
    rng = np.random.default_rng(0)
    for slot in range(rows):
        model.prefill(slot, rng.integers(1, 1000, prompt))
    calls: dict[str, Callable[[], object]] = {"decode 1": lambda: model.decode([0], [7])}
    for b in slots:
        calls[f"decode {b}"] = lambda b=b: model.decode(list(range(b)), [7] * b)
        for k in ks:
            ids = rng.integers(1, 1000, b * (k + 1))
            calls[f"verify {b}x{k + 1}"] = lambda ids=ids: model.prefill_all(0, ids)
    names = list(calls)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(repeats + 1):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            began = time.perf_counter()
            calls[name]()
            elapsed = time.perf_counter() - began
            for slot in range(rows):
                if not model.truncate(slot, prompt):
                    raise SystemExit(f"{bundle}: a slot could not be cut back (a hybrid model?)")
            if round_:
                samples[name].append(elapsed * 1e3)
        log(f"{bundle.name}: round {round_}/{repeats}")
    model.close()
    generator.close()
    return {name: statistics.median(values) for name, values in samples.items()}


def rows_for(name: str, ms: dict[str, float], slots: Sequence[int], ks: Sequence[int]) -> list:
    """One table row per (B, k)."""
    out = []
    for b in slots:
        decode = ms[f"decode {b}"]
        for k in ks:
            verify = ms[f"verify {b}x{k + 1}"]
            ratio = verify / decode
            out.append(
                {
                    "model": name,
                    "slots": b,
                    "k": k,
                    "decode_1_ms": ms["decode 1"],
                    "decode_ms": decode,
                    "verify_ms": verify,
                    "verify_vs_decode": ratio,
                    "break_even_acceptance": break_even(ratio, k),
                    "gain_at_0.5": expected_tokens(0.5, k) / ratio,
                    "gain_at_0.8": expected_tokens(0.8, k) / ratio,
                }
            )
    return out


def table(rows: Sequence[dict[str, Any]]) -> str:
    lines = [
        "| model | slots B | drafts k | decode 1 row ms | decode B rows ms | verify B x (k+1) ms "
        "| verify / decode | break-even acceptance | gain at a=0.5 | gain at a=0.8 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        even = r["break_even_acceptance"]
        lines.append(
            f"| {r['model']} | {r['slots']} | {r['k']} | {r['decode_1_ms']:.2f} | "
            f"{r['decode_ms']:.2f} | {r['verify_ms']:.2f} | {r['verify_vs_decode']:.2f}x | "
            f"{'never' if even is None else f'{even:.2f}'} | {r['gain_at_0.5']:.2f}x | "
            f"{r['gain_at_0.8']:.2f}x |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundles", nargs="+", help="NAME=BUNDLE_DIR (or just BUNDLE_DIR)")
    parser.add_argument("--slots", type=_ints, default=[2, 4], help="busy slots B, comma list")
    parser.add_argument("--ks", type=_ints, default=[1, 2, 4], help="drafts per slot, comma list")
    parser.add_argument("--prompt", type=int, default=64, help="tokens in each slot under them")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if not args.slots or min(args.slots) < 2 or not args.ks or min(args.ks) < 1:
        parser.error("--slots must be at least 2 and --ks at least 1")
    if args.repeats < 1 or args.prompt < 1:
        parser.error("--repeats and --prompt must be at least 1")
    host = host_info()
    print(host_line(host), flush=True)
    rows = []
    for name, bundle in _bundles(args.bundles).items():
        ms = measure(bundle, args.slots, args.ks, args.prompt, args.repeats, args.threads)
        rows += rows_for(name, ms, args.slots, args.ks)
    print(table(rows))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        settings = {k: getattr(args, k) for k in ("slots", "ks", "prompt", "repeats", "threads")}
        args.json.write_text(json.dumps({"host": host, "settings": settings, "rows": rows}))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
