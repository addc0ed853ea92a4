"""Add the CUDA fused graph (``model.cuda.onnx``, :mod:`.fp16_graph`) to a written bundle.

:func:`add_cuda_graph` writes the fp16 graph beside a copy-free view of the bundle's fused
graph, checks it on the CPU EP against the fp32 fused graph (top-1 agreement over the held-out
text's first :data:`CHECK_POSITIONS` tokens, at least :data:`MIN_TOP1`), and adds it with its
manifest entry (``onnxruntime.cuda_graph``) through
:func:`~edge_sdk.bundle_update.update_bundle`; a graph that misses the check is not added, and
``onnxruntime.cuda_graph_skipped`` says why.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import onnx
from tokenizers import Tokenizer

from edge_sdk.bundle import Bundle, load_bundle
from edge_sdk.bundle_update import update_bundle
from edge_sdk.errors import ExportError
from edge_sdk.exporters.fp16_graph import fp16_agreement, write_fp16_graph
from edge_sdk.exporters.fused_graph import ORT_GRAPH_FILE
from edge_sdk.exporters.fused_graph_check import FLOAT_COMPUTE
from edge_sdk.exporters.io_names import graph_io_names
from edge_sdk.exporters.quantize.calibration import DEFAULT_HELDOUT

__all__ = ["CHECK_POSITIONS", "MIN_TOP1", "add_cuda_graph", "link_fused_graph"]

MIN_TOP1 = 0.99  # the fp16 graph's top-1 agreement with the fp32 fused graph, at least
CHECK_POSITIONS = 256  # held-out tokens decoded by both graphs


def link_fused_graph(bundle: Path, folder: Path) -> Path:
    """Hard-link (or copy) the bundle's fused graph and its data file into ``folder``; the
    graph's path there."""
    for name in (ORT_GRAPH_FILE, f"{ORT_GRAPH_FILE}.data"):
        if (bundle / name).is_file():
            try:
                os.link(bundle / name, folder / name)
            except OSError:
                shutil.copy2(bundle / name, folder / name)
    return folder / ORT_GRAPH_FILE


def add_cuda_graph(path: Path, positions: int = CHECK_POSITIONS) -> Bundle:
    """Add ``model.cuda.onnx`` to the bundle at ``path`` (which must have a fused graph), or
    record why not; the updated bundle."""
    bundle = load_bundle(path, verify=False)
    if bundle.manifest.get("onnxruntime", {}).get("fused_graph") is None:
        raise ExportError(
            f"{path} has no fused graph ({ORT_GRAPH_FILE}) to derive the CUDA graph from: "
            "export without --no-ort-graph (fp32, int8 or int4)"
        )
    with tempfile.TemporaryDirectory(dir=bundle.path.parent) as work:
        record, added = _written_and_checked(bundle, Path(work), positions)

        def edit(manifest: dict[str, Any]) -> dict[str, Any]:
            manifest["onnxruntime"].update(record)
            return manifest

        return update_bundle(bundle.path, edit, added)


def _written_and_checked(
    bundle: Bundle, folder: Path, positions: int
) -> tuple[dict[str, Any], dict[str, Path]]:
    """The manifest record and the files to add: the fp16 graph written in ``folder`` and
    checked, or ``cuda_graph_skipped`` and nothing."""
    try:
        files = write_fp16_graph(link_fused_graph(bundle.path, folder))
    except ExportError as exc:
        return {"cuda_graph": None, "cuda_graph_skipped": str(exc)}, {}
    text = DEFAULT_HELDOUT.read_text(encoding="utf-8")
    ids = Tokenizer.from_file(str(bundle.tokenizer_path)).encode(text).ids[:positions]
    try:
        top1, worst = fp16_agreement(folder, bundle.config, ids, FLOAT_COMPUTE)
    except ExportError as exc:  # e.g. onnxruntime refuses the converted graph (Qwen3.5)
        return {"cuda_graph": None, "cuda_graph_skipped": str(exc)}, {}
    if top1 < MIN_TOP1:
        reason = (
            f"the fp16 graph's top-1 agreement with the fused graph is {top1:.1%} over "
            f"{len(ids)} tokens (below {MIN_TOP1:.0%}): this model needs float32 activations"
        )
        return {"cuda_graph": None, "cuda_graph_skipped": reason}, {}
    entry = _entry(files, top1, worst, len(ids))
    model = onnx.load(str(files[0]), load_external_data=False)
    entry["io_names"] = graph_io_names(model, bundle.config.num_layers, fused=True)
    return {"cuda_graph": entry}, {f.name: f for f in files}


def _entry(files: list[Path], top1: float, worst: float, positions: int) -> dict[str, Any]:
    """The manifest's ``onnxruntime.cuda_graph`` record."""
    return {
        "file": files[0].name,
        "provider": "CUDAExecutionProvider",
        "dtype": "float16 activations and KV cache; input_ids int64, logits float32",
        "weights": f"the fused graph's integer blocks ({ORT_GRAPH_FILE}.data), fp16 scales",
        "inputs": "as the fused graph's, past/present float16",
        "cpu_check": {
            "top1_agreement": top1,
            "max_abs_logit_difference": worst,
            "positions": positions,
            "measure": "the fp16 graph against the fp32 fused graph, both on the CPU EP "
            "(accuracy level 1), decoding the held-out text one token at a time",
        },
    }
