"""Readable numbers for the planner's reports: sizes in GB/MB/KB (powers of 10), parameter
counts in B/M/K, FLOPs in TFLOP/GFLOP/MFLOP, times in s/ms/us, each in the largest unit that
keeps it >= 1; other quantities to three significant digits, never in exponent notation."""

from __future__ import annotations

import math

__all__ = ["format_bytes", "format_count", "format_flops", "format_seconds", "significant"]

_ROUNDS_UP = 0.9995  # 999.6 KB prints as 1.00 MB, not 1000 KB


def _scaled(value: float, units: tuple[tuple[float, str], ...], smallest: str) -> str:
    for factor, unit in units:
        if abs(value) >= factor * _ROUNDS_UP:
            x = value / factor
            digits = 2 if abs(x) < 10 else 1 if abs(x) < 100 else 0
            return f"{x:.{digits}f} {unit}"
    return f"{value:.0f} {smallest}" if smallest else f"{value:.0f}"


def format_bytes(n: float) -> str:
    """``13.48 GB``, ``7.87 MB``, ``512 B``; GB always with two decimals (as the reports were)."""
    if abs(n) >= 1e9 * _ROUNDS_UP:
        return f"{n / 1e9:.2f} GB"
    return _scaled(n, ((1e6, "MB"), (1e3, "KB")), "B")


def format_count(n: float) -> str:
    """A parameter count: ``6.74 B``, ``135 M``, ``1.97 M``, ``12.3 K``, ``512``."""
    return _scaled(n, ((1e9, "B"), (1e6, "M"), (1e3, "K")), "")


def format_flops(n: float) -> str:
    """``28.16 TFLOP``, ``12.4 GFLOP``, ``3.21 MFLOP``; TFLOP always with two decimals."""
    if abs(n) >= 1e12 * _ROUNDS_UP:
        return f"{n / 1e12:.2f} TFLOP"
    return _scaled(n, ((1e9, "GFLOP"), (1e6, "MFLOP"), (1e3, "KFLOP")), "FLOP")


def format_seconds(t: float) -> str:
    """``2.75 s``, ``326 ms``, ``865 us``."""
    if t >= _ROUNDS_UP:
        return f"{t:.2f} s"
    return _scaled(t * 1e6, ((1e3, "ms"),), "us") if t * 1e6 >= 0.5 else "0 us"


def significant(x: float, digits: int = 3) -> str:
    """``x`` to ``digits`` significant digits as plain decimals (0.0000820, 0.11, 1,234)."""
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(x))))
    text = f"{x:,.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text
