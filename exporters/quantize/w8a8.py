"""W8A8: int8 weights and int8 activations, static calibration, TensorRT explicit-quantization QDQ.

* SmoothQuant (Xiao et al., 2022): per input channel ``s = max|x|^alpha / max|w|^(1 - alpha)``
  moves activation outliers into the weights, folded exactly into the producer (:mod:`.scaling`).
* Activation ranges, per MatMul input, from the calibration text (torch hooks on the model):
  ``minmax`` (max |x|), ``percentile`` (that percentile of |x|), ``entropy`` (TensorRT's
  KL-divergence threshold over a 2048-bin histogram of |x|).
* Graph: the int8 weight-only rewrite (``DequantizeLinear(int8 W, per output channel)``), and on
  the activation input of each weight MatMul a ``QuantizeLinear -> DequantizeLinear`` pair with
  one scale (per tensor) and an int8 zero point of 0: symmetric, the form TensorRT builds int8
  kernels from. Attention's score and value products (activation x activation) are never
  quantized (measured: max logit error 1.14 -> 0.48 when they are left out); ``exclude`` keeps
  more MatMuls float by node-name substring (e.g. ``"lm_head"``, ``"down_proj"``).
* On onnxruntime's CPU EP this form is slower than weight-only int8 (onnxruntime fuses each pair
  into ``MatMulIntegerToFloat`` but quantizes activations at run time); it is TensorRT's form.
"""

from __future__ import annotations

import copy

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper
from torch import Tensor, nn

from edge_sdk.exporters.model import LiteForCausalLM
from edge_sdk.exporters.quantize.int8 import weight_key
from edge_sdk.exporters.quantize.scaling import ScaleGroup, collect_inputs, fold_scale, scale_groups

__all__ = [
    "activation_ranges",
    "add_activation_qdq",
    "entropy_threshold",
    "matmul_weight_keys",
    "smooth",
    "smooth_scale",
]

BINS = 2048
LEVELS = 128


def smooth_scale(grp: ScaleGroup, x: Tensor, alpha: float) -> Tensor:
    """SmoothQuant's scale [P] of one group from its inputs ``x`` [n, K]."""
    act = grp.reduce(x.abs().amax(dim=0), "max").clamp(min=1e-5)
    wmax = torch.stack([lin.weight.detach().abs().amax(dim=0) for lin in grp.linears]).amax(dim=0)
    wmax = grp.reduce(wmax, "max").clamp(min=1e-5)
    return (act.pow(alpha) / wmax.pow(1 - alpha)).clamp(min=1e-5)


def smooth(
    model: LiteForCausalLM, token_ids: list[int], window: int, alpha: float
) -> LiteForCausalLM:
    """A SmoothQuant-scaled copy of ``model`` (the same function)."""
    scaled = copy.deepcopy(model).eval()
    groups = scale_groups(scaled)
    inputs = collect_inputs(
        scaled, [g.linears[0] for g in groups], token_ids, window, max_rows=4096
    )
    for grp in groups:
        fold_scale(grp, smooth_scale(grp, inputs[id(grp.linears[0])], alpha))
    return scaled


def _absolute_values(
    model: LiteForCausalLM, token_ids: list[int], window: int, max_rows: int = 1024
) -> dict[int, Tensor]:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    inputs = collect_inputs(model, linears, token_ids, window, max_rows=max_rows)
    return {key: x.abs().flatten() for key, x in inputs.items()}


def entropy_threshold(hist: np.ndarray, edges: np.ndarray) -> float:
    """TensorRT's entropy calibration: the clipping threshold that minimises KL(P || Q)."""
    hist = hist.astype(np.float64)
    best, best_kl = len(hist), np.inf
    for i in range(LEVELS, len(hist) + 1):
        p = hist[:i].copy()
        p[-1] += hist[i:].sum()
        starts = np.linspace(0, i, LEVELS + 1).astype(np.int64)[:-1]
        lengths = np.diff(np.append(starts, i))
        nonzero = hist[:i] > 0
        mass = np.add.reduceat(hist[:i], starts)
        used = np.add.reduceat(nonzero.astype(np.float64), starts)
        q = np.repeat(mass / np.maximum(used, 1), lengths) * nonzero
        p_sum, q_sum = p.sum(), q.sum()
        if p_sum == 0 or q_sum == 0:
            continue
        mask = p > 0
        qn = np.where(q > 0, q / q_sum, 1e-12)
        kl = float((p[mask] / p_sum * np.log(p[mask] / p_sum / qn[mask])).sum())
        if kl < best_kl:
            best, best_kl = i, kl
    return float(edges[best])


def activation_ranges(
    model: LiteForCausalLM,
    token_ids: list[int],
    window: int,
    method: str,
    percentile: float = 99.99,
) -> dict[bytes, float]:
    """Clipping threshold of each Linear's input (per tensor), keyed by ONNX weight."""
    values = _absolute_values(model, token_ids, window)
    ranges: dict[bytes, float] = {}
    for module in model.modules():
        if not isinstance(module, nn.Linear) or id(module) not in values:
            continue
        a = values[id(module)].numpy()
        peak = float(a.max()) or 1.0
        if method == "minmax":
            threshold = peak
        elif method == "percentile":
            threshold = float(np.percentile(a, percentile))
        else:
            hist, edges = np.histogram(a, bins=BINS, range=(0.0, peak))
            threshold = entropy_threshold(hist, edges)
        ranges[weight_key(module.weight.detach().numpy().T)] = max(threshold, 1e-8)
    return ranges


def matmul_weight_keys(model: onnx.ModelProto) -> dict[str, bytes]:
    """MatMul node name -> :func:`weight_key` of its constant weight (on the float graph)."""
    inits = {i.name: i for i in model.graph.initializer}
    return {
        node.name: weight_key(numpy_helper.to_array(inits[node.input[1]]))
        for node in model.graph.node
        if node.op_type == "MatMul"
        and node.input[1] in inits
        and len(inits[node.input[1]].dims) == 2
    }


def add_activation_qdq(
    model: onnx.ModelProto, thresholds: dict[str, float], exclude: tuple[str, ...] = ()
) -> list[str]:
    """Put a Q/DQ pair on the activation input of each MatMul named in ``thresholds``.

    Only MatMuls whose weight comes from a ``DequantizeLinear`` qualify; returns their names.
    """
    graph = model.graph
    produced_by_dq = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear"}
    new_nodes: list[onnx.NodeProto] = []
    done: list[str] = []
    for node in graph.node:
        name = node.name
        if (
            node.op_type == "MatMul"
            and node.input[1] in produced_by_dq
            and name in thresholds
            and not any(pattern in name for pattern in exclude)
        ):
            stem = name.strip("/").replace("/", ".") + ".input"
            scale = np.array(thresholds[name] / 127.0, dtype=np.float32)
            graph.initializer.extend(
                [
                    numpy_helper.from_array(scale, f"{stem}.scale"),
                    numpy_helper.from_array(np.array(0, np.int8), f"{stem}.zero_point"),
                ]
            )
            args = [f"{stem}.scale", f"{stem}.zero_point"]
            new_nodes += [
                helper.make_node(
                    "QuantizeLinear",
                    [node.input[0], *args],
                    [f"{stem}.int8"],
                    name=f"{stem}/Quantize",
                ),
                helper.make_node(
                    "DequantizeLinear",
                    [f"{stem}.int8", *args],
                    [f"{stem}.dequantized"],
                    name=f"{stem}/Dequantize",
                ),
            ]
            node.input[0] = f"{stem}.dequantized"
            done.append(name)
        new_nodes.append(node)
    del graph.node[:]
    graph.node.extend(new_nodes)
    return done
