"""GPTQ (Frantar et al., 2022) for int4 block-wise weights.

The streamed exporter runs it layer by layer (:mod:`edge_sdk.exporters.stream.layer_quant`): the
calibration text reaches a layer through the earlier layers as quantized, forward hooks sum each
Linear's input Hessian ``H = 2 X^T X / n``, and :func:`gptq_int4` quantizes the weight column by
column in the reduction dimension, spreading every column's rounding error over the columns not
yet quantized through the Cholesky factor of ``H^-1`` (damped by ``damp`` x mean diagonal), in
lazy batches of 128 columns. A block's scale is clipped to the least squared error weighted by
the Hessian's diagonal (the inputs' mean squares; :func:`~.int4.rtn_int4`'s search, as the GPTQ
reference's ``mse`` option searches): taken when its first column is reached, from the
error-updated weights, or with ``act_order`` (columns by decreasing Hessian diagonal) fixed up
front from the weights as they are, so that blocks stay contiguous along K, which the ONNX form
needs. That search took the ``--int4`` default at group 64 from top-1 0.802 to 0.812
and perplexity x1.046 to x1.015 on Gemma 3 270M's CPU graph (SmolLM2: 0.866 to 0.874, x1.041 to
x1.013), which let the default group go from 32 to 64; without act-order (``--method gptq``
alone) on SmolLM2, g32 0.827 -> 0.863 and g64 0.793 -> 0.848 (``bench_quant --variants
int4-gptq-g32,int4-gptq-g64``, CPU graph).

Cost: the factorization ([K, K]) is float64 for its conditioning; the solve is float32 on one
thread (see :func:`~.scaling.one_thread`); the Hessians come from one float32 matmul over the whole
calibration batch (:class:`~edge_sdk.exporters.stream.layerwise.InputStats`). Side by side with
the float64 solver on SmolLM2-135M's shapes (a shared 2-core host): the solve 1.2x faster, the
Hessians 2-2.5x, the levels the same to rounding (top-1 0.825 vs 0.828 at group 32).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from edge_sdk.exporters.quantize.int4 import QMAX, QMIN, rtn_int4
from edge_sdk.exporters.quantize.scaling import one_thread

__all__ = ["gptq_int4"]

LAZY_BATCH = 128


def _inverse_factor(h: Tensor, damp: float) -> Tensor:
    """The upper Cholesky factor of ``(H + damp * mean(diag H) I)^-1`` (float32 [K, K]); ``h``
    (float64) is overwritten."""
    h.diagonal().add_(damp * torch.mean(h.diagonal()))
    lower = torch.linalg.cholesky(h)  # one [K, K] at a time: the Hessian, then its factors
    del h
    inverse = torch.cholesky_inverse(lower)
    del lower
    factor: Tensor = torch.linalg.cholesky(inverse, upper=True).float()
    return factor


def gptq_int4(
    weight: Tensor,
    hessian: Tensor,
    group: int,
    damp: float = 0.01,
    act_order: bool = False,
    consume: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """GPTQ of a torch-layout weight [N, K]; returns ONNX layout (q [K, N] int8, scale [B, N]).

    ``hessian`` ([K, K], float64): ``2 X^T X / n`` of the weight's inputs. ``consume``: it may be
    overwritten, which saves a [K, K] float64 copy (642 MB for a 1.5B model's down_proj)."""
    with one_thread():  # small per-column ops: see one_thread
        return _solve(weight, hessian, group, damp, act_order, consume)


def _solve(
    weight: Tensor,
    hessian: Tensor,
    group: int,
    damp: float = 0.01,
    act_order: bool = False,
    consume: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    w = weight.detach().float().clone()  # [N, K]
    n, k = w.shape
    h = (hessian if consume else hessian.clone()).double()
    del hessian
    dead = h.diagonal() == 0
    h.diagonal()[dead] = 1.0
    w[:, dead] = 0.0
    importance = h.diagonal().float().numpy().copy()  # each input's mean square, for clipping
    if act_order:
        perm = torch.argsort(h.diagonal(), descending=True)
        w, h = w[:, perm], h[perm][:, perm]
    else:
        perm = torch.arange(k)
    hinv = _inverse_factor(h, damp)
    del h
    blocks = -(-k // group)
    scale = torch.zeros(n, blocks, dtype=torch.float32)
    if act_order:  # fixed scales: blocks are contiguous in the original column order
        w_onnx = weight.detach().numpy().T.astype(np.float32)
        scale = torch.from_numpy(rtn_int4(w_onnx, group, importance)[1].T)
    q = torch.zeros(n, k, dtype=torch.float32)
    batch = max(LAZY_BATCH, group)
    order = perm.tolist()
    for i1 in range(0, k, batch):
        i2 = min(i1 + batch, k)
        w1 = w[:, i1:i2].clone()
        err1 = torch.zeros_like(w1)
        hinv1 = hinv[i1:i2, i1:i2]
        for i in range(i2 - i1):
            col = order[i1 + i]
            if not act_order and col % group == 0:  # a group starts; the batch holds it whole
                block = w1[:, i : i + group].T.numpy()
                clipped = rtn_int4(block, group, importance[col : col + group])[1]
                scale[:, col // group] = torch.from_numpy(clipped[0])
            s = scale[:, col // group]
            qcol = torch.clamp(torch.round(w1[:, i] / s), QMIN, QMAX)
            q[:, i1 + i] = qcol
            err = (w1[:, i] - qcol * s) / hinv1[i, i]
            w1[:, i:] -= err[:, None] * hinv1[i, i:][None, :]
            err1[:, i] = err
        w[:, i2:] -= err1 @ hinv[i1:i2, i2:]
    q_orig = torch.empty_like(q)
    q_orig[:, perm] = q
    return q_orig.T.numpy().astype(np.int8), scale.T.numpy().astype(np.float32)
