"""The fp16 fused graph (``model.cuda.onnx``) against the fp32 fused graph on the CPU EP.

Exports the model at each precision (or takes bundles already written), writes the fp16 graph
next to the fused one, and prints the size and time it adds and its agreement over ``--tokens``
positions of the held-out text (exporters/data/heldout.txt), decoded one token at a time:

    python benchmarks/bench_fp16_graph.py MODEL --precisions int8 int4 --tokens 256
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from tokenizers import Tokenizer

from edge_sdk.bundle import load_bundle
from edge_sdk.exporters import export
from edge_sdk.exporters.fp16_graph import fp16_agreement, write_fp16_graph
from edge_sdk.exporters.fused_graph import ORT_GRAPH_FILE
from edge_sdk.exporters.fused_graph_check import FLOAT_COMPUTE

HELDOUT = Path(__file__).resolve().parent.parent / "exporters" / "data" / "heldout.txt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="checkpoint, GGUF or Hugging Face folder")
    parser.add_argument("--precisions", nargs="+", default=["int8", "int4"])
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench_fp16_graph"))
    args = parser.parse_args()
    for precision in args.precisions:
        folder = args.out / precision
        if not (folder / ORT_GRAPH_FILE).is_file():
            export(args.model, folder, precision)
        bundle = load_bundle(folder, verify=False)
        start = time.perf_counter()
        files = write_fp16_graph(folder / ORT_GRAPH_FILE)
        seconds = time.perf_counter() - start
        added = sum(f.stat().st_size for f in files)
        fused = sum(p.stat().st_size for p in folder.glob(f"{ORT_GRAPH_FILE}*"))
        text = HELDOUT.read_text(encoding="utf-8")
        ids = Tokenizer.from_file(str(bundle.tokenizer_path)).encode(text).ids[: args.tokens]
        top1, worst = fp16_agreement(folder, bundle.config, ids, FLOAT_COMPUTE)
        print(
            f"{precision}: fp16 graph adds {added / 2**20:.2f} MiB (fused graph "
            f"{fused / 2**20:.1f} MiB), written in {seconds:.2f} s; over {len(ids)} positions "
            f"top-1 agreement {top1:.4f}, max |logit difference| {worst:.4f}"
        )


if __name__ == "__main__":
    main()
