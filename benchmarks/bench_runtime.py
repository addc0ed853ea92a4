"""Runtime benchmark: overhead over a bare onnxruntime loop, onnxruntime-genai, roofline, memory.

    python benchmarks/bench_runtime.py                      # demo int8 bundle (seconds)
    python benchmarks/bench_runtime.py --llama200m          # + a 200M Llama vs onnxruntime-genai

Prints one table and writes JSON (``--out``). Every comparison is interleaved (A, B, C, A, B,
C, ...) and reported as medians, because the machines this runs on are shared and noisy.

Rows (``fused``: the bundle's onnxruntime graph ``model.ort.onnx``, the CPU default;
``standard``: ``model.onnx``, the graph TensorRT and the GPU providers run):
- ``runtime, fused``: :func:`edge_sdk.runtime.load` + ``generate`` (greedy, EOS ignored),
  everything included (sampling, detokenization, stop checks, statistics), on the bundle's
  fused graph file (``optimized_cache=False``), the same file the fused bare loop runs.
- ``runtime, fused, cached``: the default load, from the cached optimized graph.
- ``bare loop, fused``: I/O binding with the KV buffers bound once, ids and positions written
  in place, argmax in numpy: the least a Python program can do with the fused file.
- ``runtime, standard`` / ``bare loop, standard``: the same on ``model.onnx``; the bare loop is
  ``session.run`` with numpy feeds, presents fed back as the next past.
- ``onnxruntime-genai``: its own builder's model of the same weights at the same precision
  (``--llama200m``; skipped with a message when ``onnxruntime_genai`` is not installed).

``vs bare`` compares each row with the bare loop over the same graph file (genai: with the fused
bare loop).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from host import host_info, host_line

from edge_sdk import load_bundle
from edge_sdk.onnx_io import past_names, present_names
from edge_sdk.runtime import load

# -- the 200M Llama (random init, made locally) ---------------------------------------------------

LLAMA200M: dict[str, Any] = {
    "hidden_size": 1024,
    "num_hidden_layers": 12,
    "num_attention_heads": 16,
    "num_key_value_heads": 4,
    "intermediate_size": 2816,
    "vocab_size": 32000,
    "max_position_embeddings": 2048,
    "tie_word_embeddings": False,
}


def _byte_level_tokenizer(vocab_size: int) -> str:
    """A byte-level BPE trained on the exporter's packaged text (fits any Llama vocab)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    import edge_sdk.exporters

    data = Path(edge_sdk.exporters.__file__).parent / "data"
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=min(vocab_size, 4096),
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train([str(p) for p in sorted(data.glob("*.txt"))], trainer)
    return tok.to_str()


def make_llama200m_hf(work: Path, log: Callable[[str], None] = print) -> Path:
    """The 200M Llama's HF folder (random init, seed 0), made once in ``work``."""
    work.mkdir(parents=True, exist_ok=True)
    hf = work / "llama200m-hf"
    if not (hf / "config.json").is_file():
        import torch
        import transformers

        log("making the 200M Llama (random init) ...")
        config = transformers.LlamaConfig(**LLAMA200M, eos_token_id=0, bos_token_id=0)
        torch.manual_seed(0)
        model = transformers.LlamaForCausalLM(config).eval()
        model.save_pretrained(hf, safe_serialization=True)
        (hf / "tokenizer.json").write_text(_byte_level_tokenizer(LLAMA200M["vocab_size"]))
        (hf / "tokenizer_config.json").write_text(
            json.dumps(
                {
                    "tokenizer_class": "PreTrainedTokenizerFast",
                    "eos_token": "<|endoftext|>",
                    "bos_token": "<|endoftext|>",
                    "model_max_length": 2048,
                }
            )
        )
    return hf


def export_edge(
    hf: Path,
    out: Path,
    precision: str,
    group_size: int = 128,
    max_seq_len: int = 512,
    log: Callable[[str], None] = print,
    int4_default: bool = False,
) -> Path:
    """This SDK's bundle of ``hf`` at int8 or int4, made once, kept whatever its accuracy check
    says. int4: RTN in blocks of ``group_size``, or with ``int4_default`` the ``--int4`` default
    recipe (GPTQ + AWQ, layer 0 int8) at that group size."""
    from edge_sdk.exporters import QuantConfig, export

    if precision == "int8":
        quant = QuantConfig(method="int8")
    elif int4_default:
        quant = QuantConfig.from_precision("int4").with_changes(group_size=group_size)
    else:
        quant = QuantConfig(method="rtn", group_size=group_size, quantize_embedding=True)
    if not (out / "manifest.json").is_file():
        log(f"exporting {hf.name} with edge-sdk ({quant.label}) ...")
        export(hf, out, quant=quant, max_seq_len=max_seq_len, eval_tokens=256, force=True)
    return out


def export_genai(
    hf: Path,
    out: Path,
    precision: str,
    cache: Path,
    group_size: int = 128,
    log: Callable[[str], None] = print,
) -> Path:
    """onnxruntime-genai's builder's model of ``hf`` at the same precision, made once (left
    unmade, with a message, when ``onnxruntime_genai`` is not installed or its builder fails)."""
    if (out / "genai_config.json").is_file():
        return out
    try:
        import onnxruntime_genai  # noqa: F401
    except ImportError:
        log("onnxruntime-genai is not installed: skipping its model")
        return out
    log(f"exporting {hf.name} with onnxruntime-genai's builder ({precision}) ...")
    options = [] if precision == "int8" else [f"int4_block_size={group_size}"]
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "onnxruntime_genai.models.builder",
            "-i",
            str(hf),
            "-o",
            str(out),
            "-p",
            precision,
            "-e",
            "cpu",
            "-c",
            str(cache),
            "--extra_options",
            "accuracy_level=4",
            *options,
        ],
        check=False,
        capture_output=True,
        text=True,
    )
    if built.returncode != 0:  # e.g. a family its builder does not take: run without it
        last = (built.stderr.strip().splitlines() or ["no output"])[-1]
        log(f"onnxruntime-genai's builder failed on {hf.name} ({last[:160]}): skipping its model")
    return out


def prepare_llama200m(
    work: Path, log: Callable[[str], None] = print
) -> dict[str, tuple[Path, Path]]:
    """Make (once) the HF folder, then per precision (int8, int4 block 128) this SDK's bundle and
    onnxruntime-genai's model of it."""
    hf = make_llama200m_hf(work, log)
    return {
        precision: (
            export_edge(hf, work / f"llama200m-edge-{precision}-v3", precision, log=log),
            export_genai(
                hf, work / f"llama200m-genai-{precision}", precision, work / "genai-cache", log=log
            ),
        )
        for precision in ("int8", "int4")
    }


# -- one generation per variant: (time to first token s, decode tokens/s) -------------------------

Timing = tuple[float, float]


def _timing(start: float, first: float, last: float, tokens: int) -> Timing:
    return first - start, (tokens - 1) / (last - first)


def _session(bundle_path: Path, threads: int, graph_file: str) -> Any:
    import onnxruntime as ort

    bundle = load_bundle(bundle_path, verify=False)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    for key, value in bundle.manifest.get("onnxruntime", {}).get("session_config", {}).items():
        options.add_session_config_entry(key, value)
    return ort.InferenceSession(
        str(bundle.path / graph_file), options, providers=["CPUExecutionProvider"]
    )


def fused_graph_file(bundle_path: Path) -> str | None:
    """The bundle's onnxruntime graph file, if it has one."""
    entry = (
        load_bundle(bundle_path, verify=False).manifest.get("onnxruntime", {}).get("fused_graph")
    )
    return entry["file"] if entry else None


def bare_fused_loop(
    session: Any, layers: int, capacity: int, prompt: list[int], tokens: int
) -> Timing:
    """The fused graph with I/O binding: KV buffers bound once, ids and positions written in
    place."""
    bind = session.io_binding()
    kv_heads, head_dim = session.get_inputs()[1].shape[1], session.get_inputs()[1].shape[3]
    vocab = session.get_outputs()[0].shape[2]
    start = time.perf_counter()
    cache = [np.zeros((1, kv_heads, capacity, head_dim), np.float32) for _ in range(2 * layers)]
    for name, buf in [
        *zip(past_names(layers), cache, strict=True),
        *zip(present_names(layers), cache, strict=True),
    ]:
        bound = bind.bind_input if name.startswith("past") else bind.bind_output
        bound(name, "cpu", 0, np.float32, list(buf.shape), buf.ctypes.data)
    seqlens, total, logits = (
        np.zeros(1, np.int32),
        np.zeros((), np.int32),
        np.zeros((1, 1, vocab), np.float32),
    )
    bind.bind_input("seqlens_k", "cpu", 0, np.int32, [1], seqlens.ctypes.data)
    bind.bind_input("total_sequence_length", "cpu", 0, np.int32, [], total.ctypes.data)
    bind.bind_output("logits", "cpu", 0, np.float32, [1, 1, vocab], logits.ctypes.data)
    ids, one = np.array([prompt], dtype=np.int64), np.zeros((1, 1), np.int64)
    length, first = 0, 0.0
    for step in range(tokens):
        n = ids.shape[1]
        if step < 2:  # the prompt, then the one-token array for every decode step
            bind.bind_input("input_ids", "cpu", 0, np.int64, [1, n], ids.ctypes.data)
        seqlens[0], total[()] = length + n - 1, length + n
        session.run_with_iobinding(bind)
        length += n
        one[0, 0] = int(np.argmax(logits[0, -1]))
        ids = one
        if step == 0:
            first = time.perf_counter()
    return _timing(start, first, time.perf_counter(), tokens)


def bare_loop(session: Any, layers: int, prompt: list[int], tokens: int) -> Timing:
    """``session.run`` with numpy feeds; each step's presents are the next step's past."""
    outputs = ["logits", *present_names(layers)]
    names = past_names(layers)
    kv_heads, head_dim = session.get_inputs()[3].shape[1], session.get_inputs()[3].shape[3]
    start = time.perf_counter()
    past = [np.zeros((1, kv_heads, 0, head_dim), np.float32) for _ in names]
    ids = np.array([prompt], dtype=np.int64)
    length, first = 0, 0.0
    for step in range(tokens):
        n = ids.shape[1]
        feed = {
            "input_ids": ids,
            "attention_mask": np.ones((1, length + n), np.int64),
            "position_ids": np.arange(length, length + n, dtype=np.int64)[None],
        }
        feed.update(zip(names, past, strict=True))
        logits, *past = session.run(outputs, feed)
        length += n
        ids = np.array([[int(np.argmax(logits[0, -1]))]], dtype=np.int64)
        if step == 0:
            first = time.perf_counter()
    return _timing(start, first, time.perf_counter(), tokens)


def runtime_run(generator: Any, prompt: list[int], tokens: int) -> Timing:
    """This SDK's runtime, everything included."""
    stats = generator.generate(prompt, max_new_tokens=tokens, ignore_eos=True).stats
    assert stats.new_tokens == tokens
    return stats.time_to_first_token_s, stats.decode_tokens_per_s


def host_work_per_token(generator: Any, prompt: list[int], tokens: int, repeats: int = 5) -> float:
    """Seconds of host work per token: a generation with onnxruntime's run replaced by a no-op.

    Everything else runs (binding the KV buffers, sampling, detokenization, stop checks,
    statistics), so this is the runtime's own cost per token, free of the model's noisy time.
    """
    session = generator.backend.session
    session.run_with_iobinding = lambda *args, **kwargs: None  # instance attribute: a no-op
    try:
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            generator.generate(prompt, max_new_tokens=tokens, ignore_eos=True)
            best = min(best, (time.perf_counter() - t0) / tokens)
        return best
    finally:
        del session.run_with_iobinding


def genai_runner(folder: Path, threads: int) -> Callable[[list[int], int], Timing] | None:
    """onnxruntime-genai over its own model folder (None when it is not installed)."""
    try:
        import onnxruntime_genai as og
    except ImportError:
        return None
    config = og.Config(str(folder))
    config.overlay(
        json.dumps(
            {
                "model": {
                    "decoder": {
                        "session_options": {
                            "intra_op_num_threads": threads,
                            "inter_op_num_threads": 1,
                        }
                    }
                }
            }
        )
    )
    model = og.Model(config)

    def run(prompt: list[int], tokens: int) -> Timing:
        params = og.GeneratorParams(model)
        total = len(prompt) + tokens
        params.set_search_options(max_length=total, min_length=total, do_sample=False)
        start = time.perf_counter()
        generator = og.Generator(model, params)
        generator.append_tokens(prompt)
        first, count = 0.0, 0
        while not generator.is_done():
            generator.generate_next_token()
            generator.get_next_tokens()
            count += 1
            if count == 1:
                first = time.perf_counter()
        assert count == tokens, count
        return _timing(start, first, time.perf_counter(), tokens)

    return run


# -- machine limits: copy bandwidth, roofline, peak memory ----------------------------------------


def copy_bandwidth(threads: int, mbytes: int = 256, repeats: int = 5) -> float:
    """Best STREAM-style copy bandwidth (bytes read + written per second) with ``threads``."""
    n = mbytes * 2**20 // 8
    src, dst = np.ones(n), np.empty(n)
    parts = np.array_split(np.arange(n), threads)
    bounds = [(int(p[0]), int(p[-1]) + 1) for p in parts]
    best = float("inf")
    for _ in range(repeats):
        workers = [threading.Thread(target=np.copyto, args=(dst[a:b], src[a:b])) for a, b in bounds]
        t0 = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        best = min(best, time.perf_counter() - t0)
    return 2 * src.nbytes / best


def weight_bytes_per_token(bundle_path: Path, context: int) -> int:
    """Bytes read per decode step: every weight once (an untied embedding table: one row) + KV."""
    bundle = load_bundle(bundle_path, verify=False)
    cfg = bundle.config
    per_weight = {"int8": 1.0, "int4": 0.5, "fp16": 2.0}.get(bundle.precision, 4.0)
    table = cfg.vocab_size * cfg.hidden_size
    weights = cfg.parameter_count() - (0 if cfg.tie_word_embeddings else table)
    kv = 2 * cfg.num_layers * cfg.num_kv_heads * cfg.head_dim * 4 * context
    return int(weights * per_weight) + kv


_RSS_SCRIPT = """
import sys, json
from edge_sdk.runtime import load
gen = load(sys.argv[1], "ort-cpu", threads=int(sys.argv[2]), verify=False,
           optimized_cache=sys.argv[5] == "1")
ids = json.loads(sys.argv[3])
r = gen.generate(ids, max_new_tokens=int(sys.argv[4]), ignore_eos=True)
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the forking parent
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
print(json.dumps({"peak_rss": int(hwm) * 1024,
                  "kv_cache_bytes": gen.kv_cache_bytes, "new_tokens": r.stats.new_tokens}))
"""


def peak_memory(
    bundle_path: Path, threads: int, prompt: list[int], tokens: int, optimized_cache: bool = True
) -> dict[str, Any]:
    """Peak resident memory (VmHWM, Linux) of one generation in a fresh process, against
    weights + KV cache."""
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            _RSS_SCRIPT,
            str(bundle_path),
            str(threads),
            json.dumps(prompt),
            str(tokens),
            str(int(optimized_cache)),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    data = json.loads(out.strip().splitlines()[-1])
    graph = (
        fused_graph_file(bundle_path)
        or load_bundle(bundle_path, verify=False).manifest["graph"]["file"]
    )
    weights = sum(
        rec["size"]
        for name, rec in load_bundle(bundle_path, verify=False).manifest["files"].items()
        if name.startswith(graph)
    )  # the graph file and its .data
    data["weights_bytes"] = weights
    data["margin_bytes"] = data["peak_rss"] - weights - data["kv_cache_bytes"]
    return data


# -- the benchmark --------------------------------------------------------------------------------


def compare(
    name: str,
    bundle_path: Path,
    threads: int,
    prompt_tokens: int,
    tokens: int,
    repeats: int,
    genai_folder: Path | None,
) -> dict[str, Any]:
    """Interleaved runs of every variant on one model; medians."""
    bundle = load_bundle(bundle_path, verify=False)
    layers = bundle.config.num_layers
    rng = np.random.default_rng(0)
    prompt = [int(i) for i in rng.integers(1, min(bundle.config.vocab_size, 2000), prompt_tokens)]
    context = bundle.max_sequence_length
    fused_file = fused_graph_file(bundle_path)
    standard = load(
        bundle_path,
        "ort-cpu",
        threads=threads,
        verify=False,
        max_context=context,
        optimized_cache=False,
        fused_graph=False,
    )
    standard_session = _session(bundle_path, threads, bundle.manifest["graph"]["file"])
    variants: dict[str, tuple[str, Callable[[], Timing]]] = {}  # name -> (graph, run)
    generators = [standard]
    if fused_file:
        fused = load(
            bundle_path,
            "ort-cpu",
            threads=threads,
            verify=False,
            max_context=context,
            optimized_cache=False,
        )  # the same file as the fused bare loop
        cached = load(bundle_path, "ort-cpu", threads=threads, verify=False, max_context=context)
        fused_session = _session(bundle_path, threads, fused_file)
        generators += [fused, cached]
        variants.update(
            {
                "runtime, fused": ("fused", lambda: runtime_run(fused, prompt, tokens)),
                "runtime, fused, cached": ("fused", lambda: runtime_run(cached, prompt, tokens)),
                "bare loop, fused": (
                    "fused",
                    lambda: bare_fused_loop(fused_session, layers, context, prompt, tokens),
                ),
            }
        )
    variants.update(
        {
            "runtime, standard": ("standard", lambda: runtime_run(standard, prompt, tokens)),
            "bare loop, standard": (
                "standard",
                lambda: bare_loop(standard_session, layers, prompt, tokens),
            ),
        }
    )
    notes = []
    if genai_folder is not None:
        genai = genai_runner(genai_folder, threads)
        if genai is None:
            notes.append("onnxruntime-genai: skipped (pip install onnxruntime-genai)")
        elif (genai_folder / "genai_config.json").is_file():
            variants[f"onnxruntime-genai {bundle.precision}"] = (
                "fused",
                lambda: genai(prompt, tokens),
            )
    samples: dict[str, list[Timing]] = {k: [] for k in variants}
    for _, fn in variants.values():
        fn()  # warm-up
    for _ in range(repeats):
        for key, (_, fn) in variants.items():
            samples[key].append(fn())
    rows: dict[str, dict[str, Any]] = {}
    for key, runs in samples.items():
        rows[key] = {
            "graph": variants[key][0],
            "ttft_s": statistics.median(r[0] for r in runs),
            "decode_tokens_per_s": statistics.median(r[1] for r in runs),
            "runs": [list(r) for r in runs],
        }
    for row in rows.values():
        bare = float(rows[f"bare loop, {row['graph']}"]["decode_tokens_per_s"])
        row["decode_time_vs_bare"] = bare / row["decode_tokens_per_s"] - 1.0
    headline = generators[-1]  # the default load: fused and cached when the bundle has the graph
    long_prompt = (prompt * (context // len(prompt) + 1))[: max(1, context - tokens - 1)]
    short = host_work_per_token(headline, prompt, tokens)
    bare_key = "bare loop, fused" if fused_file else "bare loop, standard"
    host = {
        "short_context_s": short,
        "long_context_s": host_work_per_token(headline, long_prompt, tokens)
        if len(long_prompt) > len(prompt)
        else None,
        "share_of_bare_token_time": short * float(rows[bare_key]["decode_tokens_per_s"]),
    }
    for generator in generators:
        generator.close()
    return {
        "model": name,
        "bundle": str(bundle_path),
        "max_context": context,
        "precision": bundle.precision,
        "parameters": bundle.config.parameter_count(),
        "prompt_tokens": prompt_tokens,
        "new_tokens": tokens,
        "threads": threads,
        "repeats": repeats,
        "rows": rows,
        "headline": "runtime, fused, cached" if fused_file else "runtime, standard",
        "host_work_per_token": host,
        "notes": notes,
        "prompt": prompt,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--bundle",
        type=Path,
        default=None,
        help="bundle to measure (default: export the demo model at int8)",
    )
    parser.add_argument(
        "--llama200m",
        action="store_true",
        help="also the 200M random Llama at int8 and int4 (block 128) vs "
        "onnxruntime-genai (a few minutes to prepare once, cached in --work; "
        "5-10 min to run)",
    )
    parser.add_argument(
        "--work",
        type=Path,
        default=Path(tempfile.gettempdir()) / "edge-sdk-bench",
        help="where models and exports are kept between runs",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--prompt-tokens", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=128, help="new tokens per run (greedy)")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved runs per variant")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("bench_runtime.json"),
        help="JSON report (default: ./bench_runtime.json)",
    )
    args = parser.parse_args(argv)

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    models: list[tuple[str, Path, Path | None]] = []
    bundle = args.bundle
    if bundle is None:
        bundle = args.work / "demo-int8"
        if not (bundle / "manifest.json").is_file():
            from edge_sdk.exporters import demo_checkpoint_path, export

            log("exporting the demo model (int8) ...")
            export(demo_checkpoint_path(), bundle, "int8")
    models.append(("demo" if args.bundle is None else bundle.name, bundle, None))
    if args.llama200m:
        for precision, (ours, genai) in prepare_llama200m(args.work, log).items():
            models.append((f"200M {precision}", ours, genai))

    # the best of copy bandwidths measured between the models: on a shared host one measurement
    # can land in a busy moment and make the roofline look reached
    bandwidths = []
    results = []
    for name, path, genai in models:
        log(f"benchmarking {name} ({args.repeats} interleaved runs per variant) ...")
        bandwidths.append(copy_bandwidth(args.threads))
        result = compare(
            name, path, args.threads, args.prompt_tokens, args.tokens, args.repeats, genai
        )
        bandwidths.append(copy_bandwidth(args.threads))
        result["memory"] = peak_memory(path, args.threads, result["prompt"], args.tokens)
        result["memory_uncached"] = peak_memory(
            path, args.threads, result["prompt"], args.tokens, optimized_cache=False
        )
        results.append(result)
    bandwidth = max(bandwidths)
    for result in results:
        per_token = weight_bytes_per_token(
            Path(result["bundle"]), args.prompt_tokens + args.tokens // 2
        )
        ours = result["rows"][result["headline"]]["decode_tokens_per_s"]
        result["roofline"] = {
            "bytes_per_token": per_token,
            "copy_bandwidth_bytes_per_s": bandwidth,
            "copy_bandwidths_measured": bandwidths,
            "tokens_per_s": bandwidth / per_token,
            "share_reached": ours / (bandwidth / per_token),
        }

    report = {
        "benchmark": "edge-sdk runtime",
        "machine": {"platform": platform.platform(), "host": host_info()},
        "results": results,
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(host_line(report["machine"]["host"]))
    _print_table(results)
    print(f"\nJSON: {args.out}")
    return 0


def _print_table(results: list[dict[str, Any]]) -> None:
    header = f"{'model':<12} {'variant':<26} {'decode tok/s':>12} {'TTFT ms':>9} {'vs bare':>8}"
    print(header)
    print("-" * len(header))
    for res in results:
        for key, row in res["rows"].items():
            print(
                f"{res['model']:<12} {key:<26} {row['decode_tokens_per_s']:>12.1f} "
                f"{row['ttft_s'] * 1e3:>9.1f} {row['decode_time_vs_bare'] * 100:>+7.1f}%"
            )
        roof, host = res["roofline"], res["host_work_per_token"]
        longer = (
            f", {host['long_context_s'] * 1e6:.0f} us at a {res['max_context']}-token context"
            if host["long_context_s"]
            else ""
        )
        print(
            f"{res['model']:<12} runtime host work per token: {host['short_context_s'] * 1e6:.0f}"
            f" us = {host['share_of_bare_token_time'] * 100:.1f}% of a bare-loop token{longer}"
        )
        print(
            f"{res['model']:<12} roofline: {roof['bytes_per_token'] / 1e6:.1f} MB/token at "
            f"{roof['copy_bandwidth_bytes_per_s'] / 1e9:.1f} GB/s copy = "
            f"{roof['tokens_per_s']:.0f} tok/s; {res['headline']} reaches "
            f"{roof['share_reached'] * 100:.0f}%"
        )
        for label, mem in (
            ("cached graph", res["memory"]),
            ("bundle graph", res["memory_uncached"]),
        ):
            print(
                f"{res['model']:<12} peak RSS ({label}) {mem['peak_rss'] / 2**20:.0f} MiB = "
                f"weights {mem['weights_bytes'] / 2**20:.0f} + KV cache "
                f"{mem['kv_cache_bytes'] / 2**20:.1f} + {mem['margin_bytes'] / 2**20:.0f} MiB"
            )
        for note in res["notes"]:
            print(f"{res['model']:<12} {note}")


if __name__ == "__main__":
    sys.exit(main())
