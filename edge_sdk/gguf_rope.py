"""RoPE scaling of a GGUF file: its ``rope_freqs`` tensor read back into a :class:`RopeScaling`.

llama.cpp's converter does not store Llama 3's ``rope_scaling`` parameters; it bakes them into
``rope_freqs.weight``, one divisor per rotary frequency ([head_dim / 2], float32): 1 for the high
frequencies, ``factor`` for the low ones, a smooth blend in between. The blend depends only on
the two wavelength thresholds (``original_max_position_embeddings / high_freq_factor`` and
``/ low_freq_factor``): they are recovered, written with ``low_freq_factor = 1`` unless the file
names the original context, and checked by recomputing every divisor; a tensor that no
``llama3`` (or ``linear``) scaling reproduces is refused.
"""

from __future__ import annotations

import math

import numpy as np

from edge_sdk.config import RopeScaling
from edge_sdk.errors import UnsupportedModelError

__all__ = ["rope_scaling_from_factors"]

_TOLERANCE = 1e-4  # relative, on each divisor (the tensor is float32)


def rope_scaling_from_factors(
    factors: np.ndarray, theta: float, head_dim: int, original_context: int | None = None
) -> RopeScaling | None:
    """The scaling whose divisor per frequency is ``factors`` [head_dim / 2]; None for all ones."""
    factors = np.asarray(factors, dtype=np.float64).reshape(-1)
    if factors.shape != (head_dim // 2,) or not np.all(np.isfinite(factors)) or factors.min() <= 0:
        raise UnsupportedModelError(
            f"the GGUF's rope_freqs tensor has {factors.size} values, expected {head_dim // 2} "
            "positive ones (one per rotary frequency); the file may be corrupt"
        )
    if np.allclose(factors, 1.0, rtol=_TOLERANCE, atol=0):
        return None
    factor = float(factors.max())
    if np.allclose(factors, factor, rtol=_TOLERANCE, atol=0):
        return RopeScaling(kind="linear", factor=factor)
    exponents = np.arange(0, head_dim, 2, dtype=np.float64) / head_dim
    inverse_wavelength = theta**-exponents / (2 * math.pi)
    candidate = _llama3_candidate(factors, factor, inverse_wavelength, original_context)
    if candidate is None or not _reproduces(candidate, factors, theta, head_dim):
        raise UnsupportedModelError(
            "the GGUF's rope_freqs tensor is not a Llama 3 ('llama3') or linear RoPE scaling; "
            "this SDK supports only those (convert the original Hugging Face model instead)"
        )
    return candidate


def _llama3_candidate(
    factors: np.ndarray, factor: float, inverse_wavelength: np.ndarray, original_context: int | None
) -> RopeScaling | None:
    """Fit the thresholds u_high > u_low on 1/wavelength where the divisor leaves 1 and reaches
    ``factor``; between them llama3 blends with s = (u - u_low) / (u_high - u_low)."""
    unscaled = np.isclose(factors, 1.0, rtol=_TOLERANCE, atol=0)
    fully = np.isclose(factors, factor, rtol=_TOLERANCE, atol=0)
    blended = ~(unscaled | fully)
    # divisor = 1 / ((1 - s) / factor + s)  ->  s = (1 / divisor - 1 / factor) / (1 - 1 / factor)
    smooth = (1.0 / factors - 1.0 / factor) / (1.0 - 1.0 / factor)
    u = inverse_wavelength
    if blended.sum() >= 2:
        slope, intercept = np.polyfit(u[blended], smooth[blended], 1)
        if slope <= 0:
            return None
        u_low, u_high = -intercept / slope, (1.0 - intercept) / slope
    elif blended.sum() == 1:
        # one blended point fixes one relation; take Llama 3's high/low ratio of 4 for the other
        u_point, s_point = float(u[blended][0]), float(smooth[blended][0])
        u_low = u_point / (3.0 * s_point + 1.0)
        u_high = 4.0 * u_low
    else:
        if not unscaled.any() or not fully.any():
            return None
        u_high, u_low = float(u[unscaled].min()), float(u[fully].max())
    if not 0 < u_low < u_high:
        return None
    # Only the thresholds matter: without the original context from the file, choose it so that
    # low_freq_factor is 1 (Llama 3.1's 8192 / 1 / 4 come back as they were).
    context = original_context or max(1, round(1.0 / u_low))
    return RopeScaling(
        kind="llama3",
        factor=factor,
        low_freq_factor=float(f"{u_low * context:.6g}"),
        high_freq_factor=float(f"{u_high * context:.6g}"),
        original_max_position_embeddings=int(context),
    )


def _reproduces(scaling: RopeScaling, factors: np.ndarray, theta: float, head_dim: int) -> bool:
    """Whether the frequencies under ``scaling`` divide out to ``factors``."""
    recomputed = _inverse_frequencies(theta, head_dim, None) / _inverse_frequencies(
        theta, head_dim, scaling
    )
    return bool(np.allclose(recomputed, factors, rtol=_TOLERANCE, atol=0))


def _inverse_frequencies(theta: float, dim: int, scaling: RopeScaling | None) -> np.ndarray:
    """RoPE's inverse frequencies [dim / 2] under ``scaling``, in float32 as the model holds them
    (numpy's copy of :func:`edge_sdk.exporters.model.rope_inverse_frequencies`: no torch here)."""
    inv_freq = 1.0 / (theta ** (np.arange(0, dim, 2, dtype=np.float64) / dim))
    if scaling is None:
        result = inv_freq
    elif scaling.kind == "linear":
        result = inv_freq / scaling.factor
    else:  # llama3: keep high frequencies, divide low ones by `factor`, blend in between
        old_len = scaling.original_max_position_embeddings
        low_wavelen = old_len / scaling.low_freq_factor
        high_wavelen = old_len / scaling.high_freq_factor
        wavelen = 2 * math.pi / inv_freq
        scaled = np.where(wavelen > low_wavelen, inv_freq / scaling.factor, inv_freq)
        smooth = (old_len / wavelen - scaling.low_freq_factor) / (
            scaling.high_freq_factor - scaling.low_freq_factor
        )
        smoothed = (1 - smooth) * scaled / scaling.factor + smooth * scaled
        medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
        result = np.where(medium, smoothed, scaled)
    return result.astype(np.float32).astype(np.float64)
