"""One decoder layer's quantization: activation scaling folded in (SmoothQuant for int8, AWQ for
int4), statistics from the calibration windows, then each MatMul weight quantized.

Each weight is stored twice over when the two graphs want different forms
(:class:`LayerWeights`): the fused CPU graph keeps int8 weights in blocks (onnxruntime's int8
kernel quantizes activations per block, and blocks keep its accuracy), the standard graph stores
those same weights per output channel, the only int8 form TensorRT 10 takes. int4 blocks and
per-channel int8 are the same in both.

Layer by layer, as GPTQ is defined: the calibration text reaches layer ``i`` through layers
``0 .. i-1`` as they are (float for the statistics of int8 and AWQ; quantized for GPTQ's
Hessians), so the float model is never held whole.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from edge_sdk.config import ModelConfig
from edge_sdk.exporters.families.base import Family
from edge_sdk.exporters.quantize.awq import search_scale
from edge_sdk.exporters.quantize.config import INT8_GROUP_SIZE, QuantConfig
from edge_sdk.exporters.quantize.gptq import gptq_int4
from edge_sdk.exporters.quantize.mixed import keeps_int8
from edge_sdk.exporters.quantize.qweight import QWeight, float_weight, int4_weight, int8_weight
from edge_sdk.exporters.quantize.scaling import fold_scale
from edge_sdk.exporters.quantize.w8a8 import smooth_scale
from edge_sdk.exporters.stream.layerwise import InputStats, Windows

__all__ = ["LayerQuantizer", "LayerWeights", "dequantized_copy", "int8_pair"]

_SMOOTH_ROWS = 4096  # rows of activations SmoothQuant reads per group (as the traced export did)
_AWQ_ROWS = 1024


@dataclass(frozen=True)
class LayerWeights:
    """A layer's MatMul weights as each graph stores them: ``fused`` (the CPU form) and
    ``standard`` (TensorRT's form: int8 per output channel where ``fused`` has int8 blocks; the
    same objects everywhere else). int8 blocks with SmoothQuant: ``standard`` is quantized from
    ``standard_layer``, the layer before the migration (TensorRT keeps activations in float,
    there is nothing to smooth for, and per-channel scales lose accuracy on smoothed weights:
    Gemma 3 270M top-1 0.915 smoothed); its norms are that layer's too."""

    fused: dict[str, QWeight]
    standard: dict[str, QWeight]
    standard_layer: nn.Module | None = None  # the layer ``standard`` comes from, if not scaled

    @classmethod
    def same(cls, weights: dict[str, QWeight]) -> LayerWeights:
        """One form for both graphs."""
        return cls(weights, weights)


def int8_pair(w: np.ndarray, block: int, moments: np.ndarray | None) -> tuple[QWeight, QWeight]:
    """``w`` [K, N] as int8 in ``block`` inputs (the fused graph's form), and per output channel
    (the standard graph's; the same object when ``block`` is 0)."""
    fused = int8_weight(w, block, moments)
    return fused, (int8_weight(w, 0, moments) if block else fused)


@dataclass
class LayerQuantizer:
    """Quantizes layers in order; ``float_calib`` and ``quant_calib`` are the calibration windows
    through the float and the quantized layers so far (None where the method needs neither)."""

    family: Family
    config: ModelConfig
    quant: QuantConfig
    float_calib: Windows | None
    quant_calib: Windows | None
    exponents: dict[str, float] = field(default_factory=dict)
    calibrated: int = 0
    solved: int = 0

    def quantize(self, layer: nn.Module, index: int) -> LayerWeights:
        """``layer``'s MatMul weights as each graph stores them; ``layer`` itself is scaled in
        place (the same function) and the calibration windows move past it."""
        linears = self.family.linears(layer)
        if self.quant.method == "fp32":
            return LayerWeights.same(
                {n: float_weight(lin.weight.detach().numpy().T) for n, lin in linears.items()}
            )
        q = self.quant
        smooths_blocks = (
            q.method == "int8" and bool(q.group_size) and q.smoothquant_alpha is not None
        )
        unsmoothed = (
            copy.deepcopy(layer) if smooths_blocks and self.float_calib is not None else None
        )
        moments, raw = self._calibrate(layer, index, linears)
        if q.method == "int8":
            return self._int8(linears, moments, unsmoothed, raw)
        return self._int4(layer, index, linears)

    def _calibrate(
        self, layer: nn.Module, index: int, linears: dict[str, nn.Linear]
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """One pass of the float calibration windows through ``layer`` (then past it): the
        activation scales (SmoothQuant or AWQ) folded into the layer, and each Linear's input
        mean squares (int8 clipping) as the scaled layer sees them and as the unscaled one did,
        by name."""
        if self.float_calib is None:
            return {}, {}
        alpha = self.quant.smoothquant_alpha if self.quant.method == "int8" else None
        scaling = alpha is not None or self.quant.act_scale
        groups = self.family.scale_groups(self.config, layer, index) if scaling else []
        squares = InputStats(moments=self.quant.method == "int8")
        firsts = InputStats(rows=_SMOOTH_ROWS if alpha is not None else _AWQ_ROWS)
        self.float_calib.advance(
            layer,
            index,
            squares.hooks(list(linears.values())) + firsts.hooks([g.linears[0] for g in groups]),
        )
        divisors: dict[int, Tensor] = {}
        for group in groups:
            x = firsts.first_rows(group.linears[0])
            if alpha is not None:
                s = smooth_scale(group, x, alpha)
            else:
                s, self.exponents[group.name] = search_scale(
                    group, x.float(), int(self.quant.group_size or 0)
                )
            fold_scale(group, s)
            for lin in group.linears:  # the scaled layer's inputs are x / s
                divisors[id(lin)] = group.expand(s.to(torch.float64)) ** 2
        if self.quant.method != "int8":
            return {}, {}
        raw = {n: squares.sums[id(lin)] / squares.counts[id(lin)] for n, lin in linears.items()}
        scaled = {n: (raw[n] / divisors.get(id(lin), 1.0)).numpy() for n, lin in linears.items()}
        return scaled, {n: m.numpy() for n, m in raw.items()}

    def _int8(
        self,
        linears: dict[str, nn.Linear],
        moments: dict[str, np.ndarray],
        unsmoothed: nn.Module | None,
        raw: dict[str, np.ndarray],
    ) -> LayerWeights:
        block = int(self.quant.group_size or 0)
        fused: dict[str, QWeight] = {}
        standard: dict[str, QWeight] = {}
        for name, lin in linears.items():
            stats = moments.get(name)
            self.calibrated += stats is not None
            fused[name], standard[name] = int8_pair(lin.weight.detach().numpy().T, block, stats)
        if unsmoothed is None:
            return LayerWeights(fused, standard)
        originals = self.family.linears(unsmoothed)
        standard = {
            name: int8_weight(lin.weight.detach().numpy().T, 0, raw.get(name))
            for name, lin in originals.items()
        }
        return LayerWeights(fused, standard, unsmoothed)

    def _int4(self, layer: nn.Module, index: int, linears: dict[str, nn.Linear]) -> LayerWeights:
        group = int(self.quant.group_size or 0)
        gram: InputStats | None = None
        solving = [n for n in linears if not self._keeps_int8(index, n)]
        if self.quant.method == "gptq" and self.quant_calib is not None and solving:
            gram = InputStats(hessian=True)
            self.quant_calib.run(layer, index, gram.hooks([linears[n] for n in solving]))
        out: dict[str, QWeight] = {}
        standard: dict[str, QWeight] = {}
        for name, lin in linears.items():
            if self._keeps_int8(index, name):
                w = lin.weight.detach().numpy().T
                out[name], standard[name] = int8_pair(w, INT8_GROUP_SIZE, None)
                continue
            solved = None
            if gram is not None:  # one [K, K] Hessian at a time
                solved = gptq_int4(
                    lin.weight,
                    gram.hessian(lin),
                    group,
                    self.quant.gptq_damp,
                    self.quant.gptq_act_order,
                    consume=True,
                )
                self.solved += 1
            out[name] = standard[name] = int4_weight(lin.weight.detach().numpy().T, group, solved)
        if self.quant_calib is not None:
            self.quant_calib.advance(dequantized_copy(self.family, layer, out), index)
        return LayerWeights(out, standard)

    def _keeps_int8(self, index: int, name: str) -> bool:
        q = self.quant
        return keeps_int8(q.int8_layers, q.int8_matmuls, index, self.config.num_layers, name)


def dequantized_copy(family: Family, layer: nn.Module, matmuls: dict[str, QWeight]) -> nn.Module:
    """A copy of ``layer`` computing with the stored (dequantized) weights."""
    if all(w.scale is None for w in matmuls.values()):
        return layer
    work = copy.deepcopy(layer)
    with torch.no_grad():
        for name, lin in family.linears(work).items():
            lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(matmuls[name].dequantized().T)))
    return work
