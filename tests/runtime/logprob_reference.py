"""Logprobs computed without the runtime: one full-sequence pass of the bundle's standard graph
(``model.onnx``, logits for every position) through onnxruntime directly, then log-softmax in
float64. What the runtime's and the server's logprobs are checked against."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edge_sdk.bundle import load_bundle
from edge_sdk.onnx_io import cache_tensors


def full_forward_log_softmax(bundle_path: Path, ids: Sequence[int]) -> np.ndarray:
    """log_softmax of every position's logits [n, vocab] (float64) for ``ids`` from scratch."""
    bundle = load_bundle(bundle_path, verify=False)
    options = ort.SessionOptions()
    for key, value in bundle.manifest.get("onnxruntime", {}).get("session_config", {}).items():
        options.add_session_config_entry(str(key), str(value))  # the int8 kernel's accuracy level
    session = ort.InferenceSession(
        str(bundle.path / bundle.manifest["graph"]["file"]),
        options,
        providers=["CPUExecutionProvider"],
    )
    names = bundle.spec.graph.names(bundle.config.num_layers)
    n = len(ids)
    feeds: dict[str, np.ndarray] = {
        names.input_ids: np.asarray([ids], dtype=np.int64),
        str(names.attention_mask): np.ones((1, n), dtype=np.int64),
        str(names.position_ids): np.arange(n, dtype=np.int64)[None, :],
    }
    for name, tensor in zip(names.past, cache_tensors(bundle.config), strict=True):
        feeds[name] = np.zeros((1, *(0 if d is None else d for d in tensor.shape)), np.float32)
    (logits,) = session.run([names.logits], feeds)
    rows = logits[0].astype(np.float64)
    peak = rows.max(axis=1, keepdims=True)
    return rows - peak - np.log(np.exp(rows - peak).sum(axis=1, keepdims=True))


def sequence_logprobs(
    bundle_path: Path, prompt: Sequence[int], tokens: Sequence[int]
) -> list[float]:
    """The logprob of each of ``tokens`` after ``prompt`` and the tokens before it."""
    rows = full_forward_log_softmax(bundle_path, [*prompt, *tokens])
    start = len(prompt) - 1
    return [float(rows[start + k, token]) for k, token in enumerate(tokens)]


def prompt_logprobs(bundle_path: Path, prompt: Sequence[int]) -> list[float]:
    """The logprob of each prompt token after the ones before it (from the second on)."""
    return sequence_logprobs(bundle_path, prompt[:1], prompt[1:])
