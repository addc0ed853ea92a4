"""GPTQ (Frantar et al., 2022) for int4 block-wise weights, on the PyTorch reference model.

Layer by layer (decoder layers in order, then the LM head), the calibration text runs through a
copy of the model whose earlier layers already hold their quantized weights; forward hooks sum
each Linear's input Hessian ``H = 2 X^T X / n``. Each weight is then quantized column by column
in the reduction dimension, spreading every column's rounding error over the columns not yet
quantized through the Cholesky factor of ``H^-1`` (damped by ``damp`` x mean diagonal), in lazy
batches of 128 columns. A block's scale (max |w| / 7) is taken when its first column is reached,
from the error-updated weights; with ``act_order`` (columns by decreasing Hessian diagonal) the
scales are fixed up front so that blocks stay contiguous along K, which the ONNX form needs.
Answers are keyed like the ONNX weights (:func:`~edge_sdk.exporters.quantize.int8.weight_key`).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import Tensor, nn

from edge_sdk.cli_support import Progress
from edge_sdk.exporters.model import LiteForCausalLM
from edge_sdk.exporters.quantize.calibration import run_with_input_hooks
from edge_sdk.exporters.quantize.int4 import QMAX, QMIN, Solved, dequantize_int4, rtn_int4
from edge_sdk.exporters.quantize.int8 import weight_key

__all__ = ["collect_hessians", "gptq_int4", "gptq_model"]

LAZY_BATCH = 128


def collect_hessians(
    model: LiteForCausalLM, linears: list[nn.Linear], token_ids: list[int], window: int
) -> dict[int, Tensor]:
    """``2 X^T X / n`` (float64 [K, K]) of the inputs of each of ``linears``, keyed by ``id``."""
    sums: dict[int, Tensor] = {}
    counts: dict[int, int] = {}

    def hook(module: nn.Module, args: tuple[Tensor, ...]) -> None:
        x = args[0].detach().reshape(-1, args[0].shape[-1]).double()
        sums[id(module)] = sums.get(id(module), 0) + x.T @ x
        counts[id(module)] = counts.get(id(module), 0) + x.shape[0]

    run_with_input_hooks(model, linears, hook, token_ids, window)
    return {key: 2 * sums[key] / counts[key] for key in sums}


def gptq_int4(
    weight: Tensor, hessian: Tensor, group: int, damp: float = 0.01, act_order: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """GPTQ of a torch-layout weight [N, K]; returns ONNX layout (q [K, N] int8, scale [B, N])."""
    w = weight.detach().double().clone()  # [N, K]
    n, k = w.shape
    h = hessian.clone()
    dead = torch.diag(h) == 0
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    perm = torch.argsort(torch.diag(h), descending=True) if act_order else torch.arange(k)
    w, h = w[:, perm], h[perm][:, perm]
    h += damp * torch.mean(torch.diag(h)) * torch.eye(k, dtype=h.dtype)
    hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    blocks = -(-k // group)
    scale = torch.zeros(n, blocks, dtype=torch.float64)
    if act_order:  # fixed scales: blocks are contiguous in the original column order
        scale = torch.from_numpy(
            rtn_int4(weight.detach().numpy().T.astype(np.float32), group)[1].T
        ).double()
    q = torch.zeros(n, k, dtype=torch.float64)
    batch = max(LAZY_BATCH, group)
    for i1 in range(0, k, batch):
        i2 = min(i1 + batch, k)
        w1 = w[:, i1:i2].clone()
        err1 = torch.zeros_like(w1)
        hinv1 = hinv[i1:i2, i1:i2]
        for i in range(i2 - i1):
            col = int(perm[i1 + i])
            if not act_order and col % group == 0:  # group starts here; the batch holds it whole
                peak = w1[:, i : i + group].abs().amax(dim=1)
                scale[:, col // group] = (torch.where(peak > 0, peak, 1.0) / QMAX).float().double()
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


def gptq_model(
    model: LiteForCausalLM,
    token_ids: list[int],
    window: int,
    group: int,
    damp: float = 0.01,
    act_order: bool = False,
    head: bool = False,
    progress: Progress | None = None,
) -> Solved:
    """GPTQ every Linear of ``model`` (and the LM head when ``head``), keyed by ONNX weight."""
    work = copy.deepcopy(model).eval()
    stages: list[list[nn.Linear]] = [
        [m for m in layer.modules() if isinstance(m, nn.Linear)] for layer in work.model.layers
    ]
    if head:
        stages.append([work.lm_head])
    keys = {id(lin): weight_key(lin.weight.detach().numpy().T) for stage in stages for lin in stage}
    solved: Solved = {}
    for done, linears in enumerate(stages, start=1):
        hessians = collect_hessians(work, linears, token_ids, window)
        for lin in linears:
            q, scale = gptq_int4(lin.weight, hessians[id(lin)], group, damp, act_order)
            solved[keys[id(lin)]] = (q, scale)
            if lin is not work.lm_head:  # later layers see the quantized weights
                with torch.no_grad():
                    lin.weight.copy_(torch.from_numpy(dequantize_int4(q, scale, group).T))
        if progress is not None:
            progress.update(
                done,
                len(stages),
                "layers (GPTQ)" if done < len(stages) or not head else "LM head (GPTQ)",
            )
    return solved
