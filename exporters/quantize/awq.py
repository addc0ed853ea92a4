"""AWQ-style activation-aware scaling (Lin et al., 2023) before int4 quantization.

For each :class:`~edge_sdk.exporters.quantize.scaling.ScaleGroup` of the model (the inputs of q/k/v,
o_proj, gate/up and down_proj), the per-input-channel scale is ``s = mean|x|^a`` (normalised so
that ``sqrt(max s * min s) = 1``), with the exponent ``a`` searched on a grid over calibration
activations to minimise the output error of round-to-nearest int4 of the scaled weights:
``sum ||x W^T - (x / s) Q(W diag(s))^T||^2`` over the group's Linears. Salient input channels
(large activations) get larger weights and so finer steps. The inverse scale is folded into the
producer of the input (exact; see :mod:`.scaling`), so the graph has no extra op; the float model
stays the same function and GPTQ or RTN then quantize the scaled weights.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from edge_sdk.exporters.quantize.int4 import dequantize_int4, rtn_int4
from edge_sdk.exporters.quantize.scaling import ScaleGroup

__all__ = ["EXPONENTS", "search_scale"]

EXPONENTS = tuple(i / 20 for i in range(21))  # a = 0 is "no scaling"


def _fake_int4(weight: Tensor, group: int) -> Tensor:
    """Round-to-nearest int4 of a torch-layout weight [N, K], dequantized."""
    w = weight.detach().numpy().T.astype(np.float32)
    q, scale = rtn_int4(w, group)
    return torch.from_numpy(dequantize_int4(q, scale, group).T)


def _output_error(x: Tensor, linears: tuple[nn.Linear, ...], s_in: Tensor, group: int) -> float:
    err = 0.0
    for lin in linears:
        ref = x @ lin.weight.detach().T
        approx = (x / s_in) @ _fake_int4(lin.weight.detach() * s_in[None, :], group).T
        err += float(((ref - approx) ** 2).sum())
    return err


def search_scale(grp: ScaleGroup, x: Tensor, group: int) -> tuple[Tensor, float]:
    """The scale [P] of one group (normalised) and its exponent, searched on its inputs ``x``."""
    act = grp.reduce(x.abs().mean(dim=0)).clamp(min=1e-6)
    best, best_err = 0.0, float("inf")
    with torch.no_grad():
        for a in EXPONENTS:
            s = act.pow(a)
            s = s / torch.sqrt(s.max() * s.min())
            err = _output_error(x, grp.linears, grp.expand(s), group)
            if err < best_err:
                best, best_err = a, err
    s = act.pow(best)
    return s / torch.sqrt(s.max() * s.min()), best
