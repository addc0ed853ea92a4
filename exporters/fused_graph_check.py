"""The fused onnxruntime graph's check: it runs before a bundle keeps it.

:func:`check_ort_graph` runs the written fused graph (:class:`FusedSession` binds it as the
runtime does) on the parity prompt and compares its logits with the PyTorch reference computed
with the fused graph's own stored weights (the standard graph's int8 weights may be in another
form: per output channel for TensorRT); the bundle keeps it only when they agree within
:data:`GRAPH_TOLERANCE`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edge_sdk.config import ModelConfig
from edge_sdk.exporters.fused_graph import UnsupportedGraph
from edge_sdk.exporters.ort_check import cpu_session
from edge_sdk.onnx_io import cache_tensors

__all__ = ["FLOAT_COMPUTE", "GRAPH_TOLERANCE", "FusedSession", "check_ort_graph"]


class FusedSession:
    """A CPU session over the onnxruntime graph, bound like the runtime binds it: one buffer per
    KV tensor, read and written in place; a past and a present buffer per state tensor (the
    present copied back after each run). ``rows``: sequences decoded side by side (a sequence
    longer than one token runs at one row only, as in the graph). ``provider``: another EP
    (CUDA's, in the GPU tests), the buffers still bound in host memory."""

    def __init__(
        self,
        path: Path,
        config: ModelConfig,
        capacity: int,
        session_config: dict[str, str],
        rows: int = 1,
        provider: str = "CPUExecutionProvider",
    ) -> None:
        self.session = cpu_session(path, session_config, provider=provider)
        self.config = config
        kinds = {i.name: i.type for i in self.session.get_inputs()}
        self.tensors = cache_tensors(config)
        #: the KV buffers' dtype: float32, or fp16 in the CUDA fused graph
        self.dtype = np.dtype(
            np.float16 if kinds.get(self.tensors[0].past) == "tensor(float16)" else np.float32
        )
        self.reset(rows, capacity)

    def reset(self, rows: int, capacity: int) -> None:
        """Empty caches of ``rows`` sequences of up to ``capacity`` positions (same session)."""
        self.past = [np.zeros((rows, *t.sized(capacity)), self.dtype) for t in self.tensors]
        self.present = [
            p if t.grows else p.copy() for t, p in zip(self.tensors, self.past, strict=True)
        ]
        self.length = 0

    def run(self, ids: list[int]) -> np.ndarray:
        """Logits [vocab] of the last of ``ids``, on top of the cache (one row)."""
        last: np.ndarray = self.run_rows(np.array([ids], np.int64))[0]
        return last

    def run_rows(self, ids: np.ndarray) -> np.ndarray:
        """Logits [rows, vocab] of the last of ``ids`` [rows, S] in each row, on top of the
        cache (every row at the same length)."""
        rows = len(ids)
        bind = self.session.io_binding()
        total = self.length + ids.shape[1]
        bind.bind_cpu_input("input_ids", np.ascontiguousarray(ids, np.int64))
        bind.bind_cpu_input("seqlens_k", np.full(rows, total - 1, np.int32))
        bind.bind_cpu_input("total_sequence_length", np.array(total, np.int32))
        for tensor, past, present in zip(self.tensors, self.past, self.present, strict=True):
            shape, kind = list(past.shape), self.dtype.type
            bind.bind_input(tensor.past, "cpu", 0, kind, shape, past.ctypes.data)
            bind.bind_output(tensor.present, "cpu", 0, kind, shape, present.ctypes.data)
        logits = np.empty((rows, 1, self.config.vocab_size), np.float32)
        bind.bind_output("logits", "cpu", 0, np.float32, list(logits.shape), logits.ctypes.data)
        self.session.run_with_iobinding(bind)
        for past, present in zip(self.past, self.present, strict=True):
            if past is not present:
                np.copyto(past, present)
        self.length = total
        last: np.ndarray = logits[:, -1]
        return last


#: Largest relative logit difference between the fused graph and the PyTorch reference with the
#: same stored weights, both computing in float32 (onnxruntime's 4/8-bit kernels at accuracy
#: level 1): only float rounding differs (the graphs measured 1e-6 apart on SmolLM2-135M int8 and
#: int4). At the runtime's level 4 the kernels quantize activations per block: on a real model
#: that alone reached 3-9% over six steps, which says nothing about the graph's correctness.
GRAPH_TOLERANCE = {"fp32": 1e-4, "int8": 1e-4, "int4": 1e-4}
FLOAT_COMPUTE = {"session.qdq_matmulnbits_accuracy_level": "1"}


def _difference(
    session: FusedSession, prompt: list[int], decode: int, reference: np.ndarray
) -> float:
    """Worst relative logit difference against ``reference`` [len(prompt), V] over a two-chunk
    prefill of all but the last ``decode`` tokens of ``prompt``, then those one at a time."""
    split = max(1, len(prompt) - decode)
    half = max(1, split // 2)
    last = session.run(prompt[:half])
    if split > half:
        last = session.run(prompt[half:split])
    got, wanted = [last], [reference[split - 1]]
    for position in range(split, len(prompt)):
        got.append(session.run([prompt[position]]))
        wanted.append(reference[position])
    return max(
        float(np.abs(g - w).max() / max(1.0, float(np.abs(w).max())))
        for g, w in zip(got, wanted, strict=True)
    )


def check_ort_graph(
    files: list[Path],
    config: ModelConfig,
    precision: str,
    reference: np.ndarray,
    session_config: dict[str, str],
    prompt: list[int],
    decode: int,
) -> dict[str, Any]:
    """Check the written onnxruntime graph ``files`` against the PyTorch reference; its
    manifest entry.

    ``reference`` [len(prompt), V]: the PyTorch layers' logits of ``prompt`` with the fused
    graph's stored weights. The graph runs all but the last ``decode`` tokens in two chunks, then
    those one at a time, computing in float32 (``session_config`` plus :data:`FLOAT_COMPUTE`;
    :data:`GRAPH_TOLERANCE`). Raises :class:`UnsupportedGraph` (after removing ``files``) when
    the precision is not one it is built for, this onnxruntime cannot run it, or it disagrees.
    """
    if precision not in GRAPH_TOLERANCE:
        raise UnsupportedGraph(
            f"no onnxruntime graph for {precision} (its standard graph is the one to run)"
        )
    check = {**session_config, **FLOAT_COMPUTE}
    try:
        session = FusedSession(files[0], config, len(prompt) + 4, check)
        worst = _difference(session, prompt, decode, reference)
        del session
    except Exception as exc:  # noqa: BLE001 - onnxruntime's own types (no such contrib ops)
        worst, failure = float("nan"), f"this onnxruntime cannot run it ({exc})"
    else:
        failure = (
            f"it disagrees with the PyTorch reference (relative logit difference {worst:.1e}, "
            f"tolerance {GRAPH_TOLERANCE[precision]:.0e})"
        )
    if not worst <= GRAPH_TOLERANCE[precision]:
        for path in files:
            path.unlink(missing_ok=True)
        raise UnsupportedGraph(failure)
    return {
        "file": files[0].name,
        "provider": "CPUExecutionProvider",
        "ops": "com.microsoft GroupQueryAttention (rotary, KV cache in place), "
        "SkipSimplifiedLayerNormalization; q/k/v and gate/up as one MatMul each",
        "inputs": "input_ids, past_key_values.{i}.key|value [1, kv_heads, capacity, head_dim] "
        "(bound as present.{i}.* too), seqlens_k int32 [1], total_sequence_length int32 []",
        "logits": "last position only",
        "parity_vs_pytorch": {
            "worst": worst,
            "tolerance": GRAPH_TOLERANCE[precision],
            "measure": "max |ort - torch| / max(1, max |torch logits|): the PyTorch layers with "
            "the fused graph's stored (dequantized) weights, both computing in float32 "
            "(accuracy level 1)",
        },
    }
