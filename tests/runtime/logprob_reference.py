"""Logprobs computed without the runtime: one full-sequence pass of the bundle's standard graph
(``model.onnx``, logits for every position) through onnxruntime directly, then log-softmax in
float64. What the runtime's and the server's logprobs are checked against."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edge_sdk.bundle import load_bundle
from edge_sdk.onnx_io import LOGITS_TO_KEEP, cache_tensors


def full_forward_log_softmax(
    bundle_path: Path, ids: Sequence[int], fused: bool = False
) -> np.ndarray:
    """log_softmax of every position's logits [n, vocab] (float64) for ``ids`` from scratch, in
    one call of the standard graph (``fused``: of the fused CPU graph, every row kept through
    ``logits_to_keep``; the two int8 graphs hold differently quantized weights)."""
    bundle = load_bundle(bundle_path, verify=False)
    options = ort.SessionOptions()
    for key, value in bundle.manifest.get("onnxruntime", {}).get("session_config", {}).items():
        options.add_session_config_entry(str(key), str(value))  # the int8 kernel's accuracy level
    fused_graph = bundle.spec.fused_graph if fused else None
    graph = bundle.spec.graph if fused_graph is None else fused_graph
    session = ort.InferenceSession(
        str(bundle.path / graph.file), options, providers=["CPUExecutionProvider"]
    )
    names = graph.names(bundle.config.num_layers)
    n = len(ids)
    feeds: dict[str, np.ndarray] = {names.input_ids: np.asarray([ids], dtype=np.int64)}
    if fused_graph is None:
        feeds[str(names.attention_mask)] = np.ones((1, n), dtype=np.int64)
        feeds[str(names.position_ids)] = np.arange(n, dtype=np.int64)[None, :]
    else:
        feeds[str(names.seqlens_k)] = np.array([n - 1], np.int32)
        feeds[str(names.total_sequence_length)] = np.array(n, np.int32)
        feeds[LOGITS_TO_KEEP] = np.array([n], np.int64)
    past = 0 if fused_graph is None else n  # the fused graph's cache buffer holds the context
    for name, tensor in zip(names.past, cache_tensors(bundle.config), strict=True):
        feeds[name] = np.zeros((1, *(past if d is None else d for d in tensor.shape)), np.float32)
    (logits,) = session.run([names.logits], feeds)
    rows = logits[0].astype(np.float64)
    peak = rows.max(axis=1, keepdims=True)
    return rows - peak - np.log(np.exp(rows - peak).sum(axis=1, keepdims=True))


def sequence_logprobs(
    bundle_path: Path, prompt: Sequence[int], tokens: Sequence[int], fused: bool = False
) -> list[float]:
    """The logprob of each of ``tokens`` after ``prompt`` and the tokens before it."""
    rows = full_forward_log_softmax(bundle_path, [*prompt, *tokens], fused)
    start = len(prompt) - 1
    return [float(rows[start + k, token]) for k, token in enumerate(tokens)]


def prompt_logprobs(bundle_path: Path, prompt: Sequence[int], fused: bool = False) -> list[float]:
    """The logprob of each prompt token after the ones before it (from the second on)."""
    return sequence_logprobs(bundle_path, prompt[:1], prompt[1:], fused)
