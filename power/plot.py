"""A PNG of power over time with the token rate (needs the ``plot`` extra: matplotlib)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_sdk._optional import require
from edge_sdk.errors import PowerError
from edge_sdk.power.efficiency import EfficiencyLog

__all__ = ["plot_efficiency"]


def plot_efficiency(
    log: EfficiencyLog, path: str | Path, bin_s: float = 0.5, title: str = "Power and token rate"
) -> Path:
    """Draw total power (left axis) and tokens/s in ``bin_s`` bins (right axis) to ``path``."""
    matplotlib = require("matplotlib", "Plotting power")
    matplotlib.use("Agg")
    plt = require("matplotlib.pyplot", "Plotting power")
    times, watts, tokens = log.timeline()
    if not times and not tokens:
        raise PowerError("nothing to plot: the log has no power samples and no tokens")
    t0 = min(times[:1] + tokens[:1] + ([log.started] if log.started is not None else []))
    fig, ax = plt.subplots(figsize=(9, 4))
    if times:
        ax.plot(np.asarray(times) - t0, watts, color="tab:red", label="power (W)")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("power (W)", color="tab:red")
    if tokens:
        rel = np.asarray(tokens) - t0
        edges = np.arange(0.0, float(rel.max()) + bin_s, bin_s)
        if len(edges) > 1:
            counts, _ = np.histogram(rel, bins=edges)
            rate = ax.twinx()
            rate.step(edges[:-1], counts / bin_s, where="post", color="tab:blue", label="tokens/s")
            rate.set_ylabel("tokens/s", color="tab:blue")
    ax.set_title(title)
    fig.tight_layout()
    out = Path(path)
    try:
        fig.savefig(out, dpi=100)
    except OSError as exc:
        raise PowerError(f"cannot write the plot {out}: {exc}") from exc
    finally:
        plt.close(fig)
    return out
