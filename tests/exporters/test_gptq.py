"""GPTQ's int4 solver on one weight: act-order scales clipped on the Hessian's diagonal, and an
output error below round to nearest's."""

from __future__ import annotations

import numpy as np
import torch

from edge_sdk.exporters.quantize.gptq import gptq_int4
from edge_sdk.exporters.quantize.int4 import QMAX, dequantize_int4, rtn_int4

GROUP = 32


def _problem(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """A torch-layout weight [N, K] with heavy tails, its inputs' Hessian and the inputs [n, K]
    (correlated, a few channels far louder than the rest, as real activations are)."""
    rng = np.random.default_rng(seed)
    n_out, k, rows = 48, 128, 1024
    weight = rng.standard_t(df=3, size=(n_out, k)).astype(np.float32)
    mixing = np.eye(k) + 1.2 * rng.standard_normal((k, k)) / np.sqrt(k)
    x = (rng.standard_normal((rows, k)) @ mixing).astype(np.float32)
    x[:, rng.choice(k, 8, replace=False)] *= 12.0
    hessian = torch.from_numpy(2.0 * x.T.astype(np.float64) @ x / rows)
    return torch.from_numpy(weight), hessian, x


def _output_error(x: np.ndarray, weight: torch.Tensor, q: np.ndarray, scale: np.ndarray) -> float:
    """Squared error of the layer's outputs, quantized vs float."""
    diff = weight.numpy().T - dequantize_int4(q, scale, GROUP)
    return float(np.square(x @ diff).sum())


def test_act_order_scales_are_clipped_and_never_exceed_the_block_peak() -> None:
    weight, hessian, _ = _problem()
    q, scale = gptq_int4(weight, hessian, GROUP, act_order=True)
    peak = rtn_int4(weight.numpy().T, GROUP)[1]  # max |w| / 7 per block
    assert q.min() >= -8 and q.max() <= QMAX and scale.shape == peak.shape
    assert np.all(scale <= peak * (1 + 1e-6))
    assert np.mean(scale < peak * 0.999) > 0.25  # heavy tails: many blocks clip


def test_gptq_output_error_is_below_round_to_nearest() -> None:
    """With act-order (the default's) well below RTN clipped on the same statistics; without it
    (each block's scale clipped on the error-updated weights) well below RTN at max |w| / 7 (with
    unclipped max / 7 scales it was at 0.59x)."""
    weight, hessian, x = _problem(seed=1)
    moments = np.square(x).mean(axis=0)
    rtn_peak = _output_error(x, weight, *rtn_int4(weight.numpy().T, GROUP))
    rtn_clipped = _output_error(x, weight, *rtn_int4(weight.numpy().T, GROUP, moments))
    ordered = _output_error(x, weight, *gptq_int4(weight, hessian, GROUP, act_order=True))
    plain = _output_error(x, weight, *gptq_int4(weight, hessian, GROUP, act_order=False))
    assert rtn_clipped < 0.8 * rtn_peak
    assert ordered < 0.5 * rtn_clipped
    assert plain < 0.45 * rtn_peak
