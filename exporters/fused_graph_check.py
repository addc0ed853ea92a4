"""The fused onnxruntime graph's check: it runs beside the standard graph before a bundle keeps it.

:func:`write_ort_graph` builds the graph (:mod:`edge_sdk.exporters.fused_graph`), saves it, runs
it and the standard graph on the same prompt (:class:`FusedSession` binds it as the runtime
does) and keeps it only when the logits agree within :data:`GRAPH_TOLERANCE`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx

from edge_sdk.config import ModelConfig
from edge_sdk.exporters.fused_graph import (
    ORT_GRAPH_FILE,
    UnsupportedGraph,
    build_ort_graph,
    rope_tables,
)
from edge_sdk.exporters.onnx_export import save_onnx
from edge_sdk.exporters.ort_check import OrtModel, cpu_session
from edge_sdk.onnx_io import past_names, present_names

__all__ = ["GRAPH_TOLERANCE", "FusedSession", "write_ort_graph"]


class FusedSession:
    """A CPU session over the onnxruntime graph, bound like the runtime binds it (one KV buffer)."""

    def __init__(
        self, path: Path, config: ModelConfig, capacity: int, session_config: dict[str, str]
    ) -> None:
        self.session = cpu_session(path, session_config)
        self.config = config
        shape = (1, config.num_kv_heads, capacity, config.head_dim)
        self.cache = [np.zeros(shape, np.float32) for _ in range(2 * config.num_layers)]
        self.length = 0

    def run(self, ids: list[int]) -> np.ndarray:
        """Logits [vocab] of the last of ``ids``, on top of the cache."""
        bind = self.session.io_binding()
        total = self.length + len(ids)
        bind.bind_cpu_input("input_ids", np.array([ids], np.int64))
        bind.bind_cpu_input("seqlens_k", np.array([total - 1], np.int32))
        bind.bind_cpu_input("total_sequence_length", np.array(total, np.int32))
        layers = self.config.num_layers
        for names in (past_names(layers), present_names(layers)):
            bind_one = bind.bind_input if names[0].startswith("past") else bind.bind_output
            for name, buf in zip(names, self.cache, strict=True):
                bind_one(name, "cpu", 0, np.float32, list(buf.shape), buf.ctypes.data)
        logits = np.empty((1, 1, self.config.vocab_size), np.float32)
        bind.bind_output("logits", "cpu", 0, np.float32, list(logits.shape), logits.ctypes.data)
        self.session.run_with_iobinding(bind)
        self.length = total
        last: np.ndarray = logits[0, -1]
        return last


#: Largest relative logit difference between the two graphs, both computing in float32
#: (onnxruntime's 4/8-bit kernels at accuracy level 1): the weights are the same tensors, so only
#: float rounding differs (measured 1e-6 on SmolLM2-135M int8 and int4). At the runtime's level 4
#: the kernels quantize activations per block and the two graphs round them differently: on a real
#: model that alone reached 3-9% over six steps, which says nothing about the graph's correctness.
GRAPH_TOLERANCE = {"fp32": 1e-4, "int8": 1e-4, "int4": 1e-4}
_FLOAT_COMPUTE = {"session.qdq_matmulnbits_accuracy_level": "1"}


def _difference(session: FusedSession, reference: OrtModel, prompt: list[int]) -> float:
    """Worst relative logit difference over a two-chunk prefill of ``prompt`` and 4 decode steps."""
    half = max(1, len(prompt) // 2)
    session.run(prompt[:half])
    got = [session.run(prompt[half:])] if len(prompt) > half else []
    want, past = reference.run(np.array([prompt], np.int64))
    wanted = [want[0, -1]] if got else []
    for _ in range(4):
        token = int(want[0, -1].argmax())
        got.append(session.run([token]))
        want, past = reference.run(np.array([[token]], np.int64), past)
        wanted.append(want[0, -1])
    return max(
        float(np.abs(g - w).max() / max(1.0, float(np.abs(w).max())))
        for g, w in zip(got, wanted, strict=True)
    )


def write_ort_graph(
    standard: onnx.ModelProto,
    config: ModelConfig,
    precision: str,
    max_seq_len: int,
    folder: Path,
    standard_path: Path,
    session_config: dict[str, str],
    prompt: list[int],
) -> dict[str, Any]:
    """Build, save and check the onnxruntime graph; its manifest entry.

    Checked against the standard graph at ``standard_path`` (both with ``session_config``, but
    computing in float32: :data:`GRAPH_TOLERANCE`): a prefill of ``prompt`` in two chunks, then
    four greedy decode steps. Raises :class:`UnsupportedGraph` when the precision or the graph is
    not one it is built for, or the two graphs disagree.
    """
    if precision not in GRAPH_TOLERANCE:
        raise UnsupportedGraph(
            f"no onnxruntime graph for {precision} (its standard graph is the one to run)"
        )
    fused = build_ort_graph(standard, config, rope_tables(config, max_seq_len))
    files = save_onnx(fused, folder / ORT_GRAPH_FILE)
    check = {**session_config, **_FLOAT_COMPUTE}
    try:
        worst = _difference(
            FusedSession(files[0], config, len(prompt) + 8, check),
            OrtModel(standard_path, config, check),
            prompt,
        )
    except Exception as exc:  # noqa: BLE001 - onnxruntime's own types (no such contrib ops)
        worst, failure = float("nan"), f"this onnxruntime cannot run it ({exc})"
    else:
        failure = (
            f"it disagrees with the standard graph (relative logit difference {worst:.1e}, "
            f"tolerance {GRAPH_TOLERANCE[precision]:.0e})"
        )
    if not worst <= GRAPH_TOLERANCE[precision]:
        for path in files:
            path.unlink()
        raise UnsupportedGraph(failure)
    return {
        "file": ORT_GRAPH_FILE,
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
