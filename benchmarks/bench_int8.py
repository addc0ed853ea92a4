"""INT8 vs FP32 bundles of the same model: file size and decode speed on onnxruntime's CPU EP.

    python benchmarks/bench_int8.py [--size demo|200m] [--tokens 64] [--repeats 5] [--threads 2]

``200m`` is a random-initialised Llama-family model of about 200 M parameters (hidden 1024,
12 layers, 16 heads, 4 KV heads, vocab 32000) made here; random weights are fine for speed.
Both bundles run the same bare greedy loop (no runtime), interleaved, and the table shows medians
and the int8/fp32 ratio. Writes JSON to ``bench-results/int8.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from host import host_info, host_line

from edge_sdk import load_bundle
from edge_sdk.onnx_io import prefill_feed, present_names


def decode_tokens_per_s(bundle_dir: Path, tokens: int, threads: int) -> float:
    """Greedy decode speed of a bare onnxruntime loop after a 16-token prompt."""
    import onnxruntime as ort

    bundle = load_bundle(bundle_dir, verify=False)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    for key, value in bundle.manifest["onnxruntime"]["session_config"].items():
        options.add_session_config_entry(key, value)
    session = ort.InferenceSession(
        str(bundle.onnx_path), options, providers=["CPUExecutionProvider"]
    )
    config = bundle.config
    outputs = ["logits", *present_names(config.num_layers)]
    ids = np.arange(1, 17, dtype=np.int64)[None]
    logits, *past = session.run(outputs, prefill_feed(config, ids))
    started = time.perf_counter()
    for _ in range(tokens):
        token = logits[:, -1:].argmax(-1)
        logits, *past = session.run(outputs, prefill_feed(config, token, past))
    return tokens / (time.perf_counter() - started)


def make_model(size: str, folder: Path) -> Path:
    """The checkpoint to export: the demo model, or a random ~200 M model saved as model.pt."""
    from edge_sdk.exporters import demo_checkpoint_path

    if size == "demo":
        return demo_checkpoint_path()
    import torch

    from edge_sdk import ModelConfig
    from edge_sdk.checkpoint import read_checkpoint_metadata
    from edge_sdk.exporters import LiteForCausalLM, save_checkpoint

    config = ModelConfig(
        vocab_size=32000,
        hidden_size=1024,
        num_layers=12,
        num_heads=16,
        num_kv_heads=4,
        intermediate_size=2816,
        max_position_embeddings=2048,
    )
    torch.manual_seed(0)
    model = LiteForCausalLM(config)
    # The demo tokenizer covers ids < 2048; speed does not depend on the text.
    tokenizer = read_checkpoint_metadata(demo_checkpoint_path())["tokenizer"]
    return save_checkpoint(model, tokenizer, folder / "model-200m.pt")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", choices=["demo", "200m"], default="demo")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench-results/int8.json"))
    args = parser.parse_args()
    from edge_sdk.exporters import export

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        source = make_model(args.size, work)
        bundles = {
            p: export(source, work / p, p, eval_tokens=256, force=True).bundle.path
            for p in ("fp32", "int8")
        }
        speeds: dict[str, list[float]] = {p: [] for p in bundles}
        for _ in range(args.repeats):  # interleaved, so host noise hits both alike
            for precision, path in bundles.items():
                speeds[precision].append(decode_tokens_per_s(path, args.tokens, args.threads))
        sizes = {p: (path / "model.onnx").stat().st_size for p, path in bundles.items()}
    medians = {p: statistics.median(v) for p, v in speeds.items()}
    host = host_info()
    print(host_line(host))
    print(f"{'precision':10s} {'model MB':>9s} {'decode tok/s (median)':>22s} {'runs':>30s}")
    for p in bundles:
        runs = " ".join(f"{v:.0f}" for v in speeds[p])
        print(f"{p:10s} {sizes[p] / 1e6:9.2f} {medians[p]:22.1f} {runs:>30s}")
    print(
        f"int8 / fp32: size x{sizes['int8'] / sizes['fp32']:.3f}, decode speed "
        f"x{medians['int8'] / medians['fp32']:.2f}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "host": host,
                "size": args.size,
                "threads": args.threads,
                "tokens": args.tokens,
                "bytes": sizes,
                "tokens_per_s": speeds,
                "median": medians,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
