"""The fused onnxruntime graph's check: it runs beside the standard graph before a bundle keeps it.

:func:`check_ort_graph` runs the written fused graph and the standard graph on the same prompt
(:class:`FusedSession` binds it as the runtime does); the bundle keeps it only when the logits
agree within :data:`GRAPH_TOLERANCE`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_sdk.config import ModelConfig
from edge_sdk.exporters.fused_graph import UnsupportedGraph
from edge_sdk.exporters.ort_check import OrtModel, cpu_session
from edge_sdk.onnx_io import cache_tensors

__all__ = [
    "FLOAT_COMPUTE",
    "GRAPH_TOLERANCE",
    "FusedSession",
    "StandardTrace",
    "check_ort_graph",
    "standard_trace",
]


class FusedSession:
    """A CPU session over the onnxruntime graph, bound like the runtime binds it: one buffer per
    KV tensor, read and written in place; a past and a present buffer per state tensor (the
    present copied back after each run)."""

    def __init__(
        self, path: Path, config: ModelConfig, capacity: int, session_config: dict[str, str]
    ) -> None:
        self.session = cpu_session(path, session_config)
        self.config = config
        self.tensors = cache_tensors(config)
        self.past = [np.zeros((1, *t.sized(capacity)), np.float32) for t in self.tensors]
        self.present = [
            p if t.grows else p.copy() for t, p in zip(self.tensors, self.past, strict=True)
        ]
        self.length = 0

    def run(self, ids: list[int]) -> np.ndarray:
        """Logits [vocab] of the last of ``ids``, on top of the cache."""
        bind = self.session.io_binding()
        total = self.length + len(ids)
        bind.bind_cpu_input("input_ids", np.array([ids], np.int64))
        bind.bind_cpu_input("seqlens_k", np.array([total - 1], np.int32))
        bind.bind_cpu_input("total_sequence_length", np.array(total, np.int32))
        for tensor, past, present in zip(self.tensors, self.past, self.present, strict=True):
            bind.bind_input(tensor.past, "cpu", 0, np.float32, list(past.shape), past.ctypes.data)
            bind.bind_output(
                tensor.present, "cpu", 0, np.float32, list(present.shape), present.ctypes.data
            )
        logits = np.empty((1, 1, self.config.vocab_size), np.float32)
        bind.bind_output("logits", "cpu", 0, np.float32, list(logits.shape), logits.ctypes.data)
        self.session.run_with_iobinding(bind)
        for past, present in zip(self.past, self.present, strict=True):
            if past is not present:
                np.copyto(past, present)
        self.length = total
        last: np.ndarray = logits[0, -1]
        return last


#: Largest relative logit difference between the two graphs, both computing in float32
#: (onnxruntime's 4/8-bit kernels at accuracy level 1): the weights are the same tensors, so only
#: float rounding differs (measured 1e-6 on SmolLM2-135M int8 and int4). At the runtime's level 4
#: the kernels quantize activations per block and the two graphs round them differently: on a real
#: model that alone reached 3-9% over six steps, which says nothing about the graph's correctness.
GRAPH_TOLERANCE = {"fp32": 1e-4, "int8": 1e-4, "int4": 1e-4}
FLOAT_COMPUTE = {"session.qdq_matmulnbits_accuracy_level": "1"}


@dataclass(frozen=True)
class StandardTrace:
    """What the standard graph computed on the check's prompt: the last position's logits after
    the prompt and after each of its greedy decode steps, and the tokens it chose."""

    logits: list[np.ndarray]
    tokens: list[int]


def standard_trace(reference: OrtModel, prompt: list[int], steps: int = 4) -> StandardTrace:
    """Run the standard graph (as ``reference``) on ``prompt``, then ``steps`` greedy tokens."""
    want, past = reference.run(np.array([prompt], np.int64))
    logits, tokens = [want[0, -1].copy()], []
    for _ in range(steps):
        tokens.append(int(want[0, -1].argmax()))
        want, past = reference.run(np.array([[tokens[-1]]], np.int64), past)
        logits.append(want[0, -1].copy())
    return StandardTrace(logits, tokens)


def _difference(session: FusedSession, trace: StandardTrace, prompt: list[int]) -> float:
    """Worst relative logit difference over a two-chunk prefill of ``prompt`` and the decode
    steps of ``trace``."""
    half = max(1, len(prompt) // 2)
    session.run(prompt[:half])
    got = [session.run(prompt[half:])] if len(prompt) > half else []
    wanted = trace.logits if got else trace.logits[1:]
    got += [session.run([token]) for token in trace.tokens]
    return max(
        float(np.abs(g - w).max() / max(1.0, float(np.abs(w).max())))
        for g, w in zip(got, wanted, strict=True)
    )


def check_ort_graph(
    files: list[Path],
    config: ModelConfig,
    precision: str,
    trace: StandardTrace,
    session_config: dict[str, str],
    prompt: list[int],
) -> dict[str, Any]:
    """Check the written onnxruntime graph ``files`` against the standard graph; its manifest
    entry.

    ``trace``: the standard graph's run on ``prompt`` (:func:`standard_trace`, with
    ``session_config`` plus :data:`FLOAT_COMPUTE`); the fused graph runs the same prompt in two
    chunks, then the same decode steps, computing in float32 too (:data:`GRAPH_TOLERANCE`). One
    session at a time: a large model's weights are never loaded twice. Raises
    :class:`UnsupportedGraph` (after removing ``files``) when the precision is not one it is
    built for, this onnxruntime cannot run it, or the two graphs disagree.
    """
    if precision not in GRAPH_TOLERANCE:
        raise UnsupportedGraph(
            f"no onnxruntime graph for {precision} (its standard graph is the one to run)"
        )
    check = {**session_config, **FLOAT_COMPUTE}
    try:
        session = FusedSession(files[0], config, len(prompt) + len(trace.tokens) + 4, check)
        worst = _difference(session, trace, prompt)
        del session
    except Exception as exc:  # noqa: BLE001 - onnxruntime's own types (no such contrib ops)
        worst, failure = float("nan"), f"this onnxruntime cannot run it ({exc})"
    else:
        failure = (
            f"it disagrees with the standard graph (relative logit difference {worst:.1e}, "
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
        "parity_vs_standard": {
            "worst": worst,
            "tolerance": GRAPH_TOLERANCE[precision],
            "measure": "max |ort - standard| / max(1, max |standard logits|), both computing "
            "in float32 (accuracy level 1)",
        },
    }
