"""Serving: aggregate tok/s and time to first token with 1, 2, 4 and 8 concurrent clients.

    python benchmarks/llamacpp.py build          # once, for the llama-server column
    python benchmarks/bench_serve.py [--precisions int8,int4] [--clients 1,2,4,8] [--repeats 3]

On the random 200M Llama of ``bench_runtime.py`` (its HF folder, with the LM head's rows beyond
its small tokenizer's vocabulary zeroed so that greedy decoding picks tokens that have text: the
servers stream text, not ids; this SDK's int8 and int4 RTN bundles, and llama.cpp's Q8_0 / Q4_0
of the same weights through ``convert_hf_to_gguf.py``):

- **generator**: the requests one after another through :class:`edge_sdk.runtime.Generator`
  in this process (the one-at-a-time rate; per-request decode tok/s from its stats);
- **edge-serve**: ``edge-serve BUNDLE --slots N --threads T`` in its own process;
- **llama-server**: ``llama-server -np N -t T`` on the matching GGUF.

Each of N clients (threads, streaming ``/v1/completions`` over httpx) sends ``--requests``
requests in turn: a distinct prompt, ``--tokens`` greedy tokens with end-of-sequence ignored.
Aggregate tok/s = all generated tokens / wall time from the first request to the last token;
TTFT = request sent -> first text chunk, p50 and p95 over all requests; decode tok/s of one
request = its chunks after the first / the time between the first and the last. Servers and
client levels run interleaved over ``--repeats`` rounds; medians. Prints one table and writes
JSON (``--out``).

``--multi-turn``: instead, a chat of ``--turns`` turns after a ``--system-tokens`` system prompt
through edge-serve with and without its prompt cache (int8, 2,048 positions): time to first
token per turn (:mod:`multi_turn`; JSON to ``bench-results/serve-multi-turn.json``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from bench_runtime import export_edge, make_llama200m_hf
from host import host_info, host_line

from edge_sdk.errors import EdgeError
from edge_sdk.runtime import load

GGUF_TYPES = {"int8": "Q8_0", "int4": "Q4_0"}
WORDS = [
    "once",
    "upon",
    "a",
    "time",
    "there",
    "was",
    "a",
    "little",
    "girl",
    "who",
    "lived",
    "near",
    "the",
    "forest",
    "and",
    "one",
    "day",
    "she",
    "found",
    "a",
    "small",
    "red",
    "ball",
    "under",
    "the",
    "old",
    "tree",
    "by",
    "the",
    "river",
]
Sample = dict[str, float]  # ttft_s, tokens, decode_tokens_per_s


def prompts(count: int, words: int = 16) -> list[str]:
    """``count`` distinct prompts of ``words`` words."""
    rng = np.random.default_rng(0)
    return [" ".join(rng.choice(WORDS, words)) for _ in range(count)]


def stream_completion(client: httpx.Client, prompt: str, tokens: int) -> Sample:
    """One streamed completion; its TTFT, token count and decode rate, as the client sees them.

    Tokens are the server's ``usage.completion_tokens`` (the random model's tokens often complete
    no character, and empty pieces are not streamed), text chunks where a server sends no usage.
    """
    body = {
        "model": "m",
        "prompt": prompt,
        "max_tokens": tokens,
        "temperature": 0,
        "stream": True,
        "ignore_eos": True,
        "stream_options": {"include_usage": True},
    }
    sent = time.perf_counter()
    arrivals: list[float] = []
    used: int | None = None
    with client.stream("POST", "/v1/completions", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            choices = chunk.get("choices") or []
            if choices and choices[0].get("text"):
                arrivals.append(time.perf_counter())
            if chunk.get("usage"):
                used = int(chunk["usage"]["completion_tokens"])
    count = used if used is not None else len(arrivals)
    if not arrivals or not count:
        raise EdgeError(f"the server streamed no text for {prompt!r}")
    span = arrivals[-1] - arrivals[0]
    return {
        "ttft_s": arrivals[0] - sent,
        "tokens": float(count),
        "decode_tokens_per_s": (count - 1) / span if span > 0 else 0.0,
    }


def run_clients(url: str, clients: int, texts: list[str], tokens: int) -> dict[str, Any]:
    """``clients`` threads share ``texts`` (each its own slice); aggregate over all requests."""
    samples: list[Sample] = []
    lock = threading.Lock()
    failures: list[BaseException] = []

    def client(mine: list[str]) -> None:
        with httpx.Client(base_url=url, timeout=600) as http:
            for text in mine:
                try:
                    try:
                        sample = stream_completion(http, text, tokens)
                    except httpx.TransportError:  # a dropped connection: once more, then fail
                        time.sleep(0.5)
                        sample = stream_completion(http, text, tokens)
                except (httpx.HTTPError, EdgeError) as exc:
                    failures.append(exc)
                    return
                with lock:
                    samples.append(sample)

    threads = [threading.Thread(target=client, args=(texts[i::clients],)) for i in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    if failures:
        raise EdgeError(f"{len(failures)} requests failed at {url}: {failures[0]}")
    return summarize(samples, wall)


def summarize(samples: list[Sample], wall: float) -> dict[str, Any]:
    ttft = [s["ttft_s"] for s in samples]
    return {
        "aggregate_tokens_per_s": sum(s["tokens"] for s in samples) / wall,
        "ttft_p50_s": float(np.percentile(ttft, 50)),
        "ttft_p95_s": float(np.percentile(ttft, 95)),
        "decode_tokens_per_s": statistics.median(s["decode_tokens_per_s"] for s in samples),
        "requests": len(samples),
    }


def one_at_a_time(bundle: Path, texts: list[str], tokens: int, threads: int) -> dict[str, Any]:
    """The same requests through one Generator, one after another."""
    samples: list[Sample] = []
    with load(bundle, "ort-cpu", threads=threads, verify=False) as gen:
        gen.generate(texts[0], max_new_tokens=4, ignore_eos=True)  # warm-up
        start = time.perf_counter()
        for text in texts:
            stats = gen.generate(text, max_new_tokens=tokens, ignore_eos=True).stats
            samples.append(
                {
                    "ttft_s": stats.time_to_first_token_s,
                    "tokens": float(stats.new_tokens),
                    "decode_tokens_per_s": stats.decode_tokens_per_s,
                }
            )
        return summarize(samples, time.perf_counter() - start)


@contextmanager
def edge_serve(
    bundle: Path, slots: int, threads: int, context: int, extra: Sequence[str] = ()
) -> Iterator[str]:
    """``edge-serve`` in its own process on a free port; its URL once it is ready."""
    command = [
        sys.executable,
        "-m",
        "edge_sdk.serve.cli",
        str(bundle),
        "--port",
        "0",
        "--json",
        "--slots",
        str(slots),
        "--threads",
        str(threads),
        "--max-context",
        str(context),
        "--no-access-log",
        "--log-level",
        "warning",
        "--power-sensor",
        "none",
        *extra,
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        url = None
        assert process.stdout is not None
        for line in process.stdout:
            event = json.loads(line)
            url = url or event.get("url")
            if event.get("event") == "ready":
                break
        if url is None or process.poll() is not None:
            raise EdgeError(f"edge-serve did not start: {' '.join(command)}")
        yield url
    finally:
        process.terminate()
        process.wait(60)


def servers(
    precision: str, bundle: Path, gguf: Path | None, threads: int, context: int
) -> dict[str, Callable[[int], Any]]:
    """name -> a context manager factory taking the slot count, yielding the URL."""
    found: dict[str, Callable[[int], Any]] = {
        "edge-serve": lambda slots: edge_serve(bundle, slots, threads, context)
    }
    if gguf is not None:
        import llamacpp

        llama = llamacpp.require()
        found["llama-server"] = lambda slots: _llama_url(
            llamacpp.LlamaServer(llama, gguf, slots=slots, threads=threads, context=context * slots)
        )
    return found


@contextmanager
def _llama_url(server: Any) -> Iterator[str]:
    with server:
        yield server.url


def text_model(hf: Path, work: Path) -> Path:
    """A copy of ``hf`` whose LM head rows beyond the tokenizer's vocabulary are zero (made once):
    the random model then decodes to tokens that have text."""
    out = work / "llama200m-text-hf"
    if (out / "config.json").is_file():
        return out
    import shutil

    from safetensors.numpy import load_file, save_file

    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(hf, tmp)
    vocab = len(json.loads((hf / "tokenizer.json").read_text())["model"]["vocab"])
    weights = load_file(str(hf / "model.safetensors"))
    weights["lm_head.weight"][vocab:] = 0
    save_file(weights, str(tmp / "model.safetensors"), {"format": "pt"})
    tmp.rename(out)
    return out


def ggufs(hf: Path, work: Path, log: Callable[[str], None]) -> dict[str, Path] | None:
    """Q8_0 and Q4_0 GGUFs of ``hf`` through llama.cpp's converter (None without llama.cpp)."""
    try:
        import llamacpp

        llama = llamacpp.require()
    except (ImportError, EdgeError) as exc:
        log(f"no llama-server column: {exc}")
        return None
    f32 = work / "llama200m-text-f32.gguf"
    llamacpp.convert_hf_to_gguf(llama, hf, f32, "f32", pre_tokenizer="gpt-2")
    return {
        p: llamacpp.quantize(llama, f32, work / f"llama200m-text-{k}.gguf", k)
        for p, k in GGUF_TYPES.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precisions", default="int8,int4")
    parser.add_argument("--clients", default="1,2,4,8")
    parser.add_argument("--requests", type=int, default=2, help="requests per client")
    parser.add_argument("--tokens", type=int, default=64, help="generated tokens per request")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-llama", action="store_true", help="skip llama-server")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "edge-sdk-bench")
    parser.add_argument("--out", type=Path, default=None, help="JSON report path")
    parser.add_argument("--multi-turn", action="store_true", help="the multi-turn chat run")
    parser.add_argument("--system-tokens", type=int, default=1000)
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--user-words", type=int, default=20)
    parser.add_argument("--conversations", type=int, default=1, help="chats taking turns")
    parser.add_argument("--prefix-cache-mb", type=float, default=0.0, help="host prefix store")
    args = parser.parse_args(argv)

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    if args.multi_turn:
        return multi_turn_main(args, log)
    args.out = args.out or Path("bench-results/serve.json")

    levels = [int(c) for c in args.clients.split(",")]
    hf = text_model(make_llama200m_hf(args.work, log), args.work)
    quantized = None if args.no_llama else ggufs(hf, args.work, log)
    context = 256
    report: dict[str, Any] = {
        "threads": args.threads,
        "tokens": args.tokens,
        "requests_per_client": args.requests,
        "results": {},
    }
    for precision in args.precisions.split(","):
        bundle = export_edge(
            hf, args.work / f"llama200m-text-edge-{precision}", precision, max_seq_len=512, log=log
        )
        runs = servers(
            precision, bundle, quantized[precision] if quantized else None, args.threads, context
        )
        rows: dict[str, dict[int, list[dict[str, Any]]]] = {"generator": {c: [] for c in levels}}
        rows.update({name: {c: [] for c in levels} for name in runs})
        for _ in range(args.repeats):
            for clients in levels:
                texts = prompts(clients * args.requests)
                rows["generator"][clients].append(
                    one_at_a_time(bundle, texts, args.tokens, args.threads)
                )
                for name, start in runs.items():
                    with start(clients) as url:
                        run_clients(url, clients, texts[:clients], 8)  # warm-up
                        rows[name][clients].append(run_clients(url, clients, texts, args.tokens))
                log(f"{precision}: {clients} clients done")
        report["results"][precision] = {
            name: {c: _median(r) for c, r in by.items()} for name, by in rows.items()
        }
    _print(report, levels)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    return 0


def multi_turn_main(args: argparse.Namespace, log: Callable[[str], None]) -> int:
    """``--multi-turn``: the prompt cache's effect on each turn's time to first token."""
    import multi_turn

    hf = text_model(make_llama200m_hf(args.work, log), args.work)
    context = 2048
    bundle = export_edge(
        hf, args.work / "llama200m-text-edge-int8-2k", "int8", max_seq_len=context, log=log
    )
    report = multi_turn.run(
        bundle,
        WORDS,
        lambda extra: edge_serve(bundle, 4, args.threads, context, extra),
        system_tokens=args.system_tokens,
        turns=args.turns,
        user_words=args.user_words,
        tokens=args.tokens,
        repeats=args.repeats,
        log=log,
        chats=args.conversations,
        cache_flags=["--prefix-cache-mb", str(args.prefix_cache_mb)]
        if args.prefix_cache_mb
        else [],
    )
    report.update(threads=args.threads, host=host_info(), model="200M Llama int8")
    multi_turn.print_report(
        report,
        f"200M Llama int8, edge-serve --slots 4 --threads {args.threads}, "
        f"{host_line(report['host'])}, "
        f"{args.system_tokens}-token system prompt, {args.tokens} tokens per reply, "
        f"{args.conversations} conversation(s), prefix store {args.prefix_cache_mb:g} MB, "
        f"medians of {args.repeats}",
    )
    out = args.out or Path("bench-results/serve-multi-turn.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    return 0


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


def _print(report: dict[str, Any], levels: list[int]) -> None:
    print(
        f"\n200M Llama, {report['threads']} threads, {report['tokens']} tokens per request, "
        f"{report['requests_per_client']} requests per client, medians"
    )
    print(
        f"{'precision':9s} {'engine':13s} {'clients':>7s} {'agg tok/s':>10s} {'x 1-by-1':>8s} "
        f"{'x llama':>8s} {'TTFT p50':>9s} {'p95':>8s} {'decode/req':>10s}"
    )
    for precision, by_engine in report["results"].items():
        for name, by_level in by_engine.items():
            for clients in levels:
                row = by_level[clients]
                base = by_engine["generator"][clients]["aggregate_tokens_per_s"]
                llama = by_engine.get("llama-server", {}).get(clients)
                vs_llama = (
                    f"{row['aggregate_tokens_per_s'] / llama['aggregate_tokens_per_s']:8.2f}"
                    if llama
                    else f"{'-':>8s}"
                )
                print(
                    f"{precision:9s} {name:13s} {clients:7d} {row['aggregate_tokens_per_s']:10.1f} "
                    f"{row['aggregate_tokens_per_s'] / base:8.2f} {vs_llama} "
                    f"{row['ttft_p50_s'] * 1e3:7.0f}ms {row['ttft_p95_s'] * 1e3:6.0f}ms "
                    f"{row['decode_tokens_per_s']:10.1f}"
                )


if __name__ == "__main__":
    sys.exit(main())
