"""Text for calibration and evaluation, and activation statistics collected from it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from edge_sdk.errors import ConfigError
from edge_sdk.exporters.model import LiteForCausalLM
from edge_sdk.exporters.quantize.int8 import weight_key

__all__ = [
    "DEFAULT_CALIBRATION",
    "DEFAULT_HELDOUT",
    "input_moments",
    "read_text",
    "run_with_input_hooks",
]

_DATA = Path(__file__).resolve().parents[1] / "data"
DEFAULT_HELDOUT = _DATA / "heldout.txt"
DEFAULT_CALIBRATION = _DATA / "calibration.txt"


def read_text(path: Path, role: str) -> str:
    """The UTF-8 text of ``path``, with a clear error when it cannot be used."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"the {role} text {path} does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the {role} text {path} as UTF-8: {exc}") from exc
    if not text.strip():
        raise ConfigError(f"the {role} text {path} is empty")
    return text


def input_moments(
    model: LiteForCausalLM, token_ids: list[int], window: int
) -> dict[bytes, np.ndarray]:
    """Mean square of each input channel of every Linear layer, keyed like the ONNX weights."""
    sums: dict[int, torch.Tensor] = {}
    counts: dict[int, int] = {}
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]

    def hook(module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        x = args[0].detach().reshape(-1, args[0].shape[-1]).double()
        sums[id(module)] = sums.get(id(module), 0) + (x * x).sum(0)
        counts[id(module)] = counts.get(id(module), 0) + x.shape[0]

    run_with_input_hooks(model, linears, hook, token_ids, window)
    result: dict[bytes, np.ndarray] = {}
    for module in linears:
        if id(module) in sums:
            key = weight_key(module.weight.detach().numpy().T)
            result[key] = (sums[id(module)] / counts[id(module)]).numpy()
    return result


def run_with_input_hooks(
    model: LiteForCausalLM,
    modules: Sequence[torch.nn.Module],
    hook: Callable[[torch.nn.Module, tuple[torch.Tensor, ...]], None],
    token_ids: list[int],
    window: int,
) -> None:
    """Run ``model`` over ``token_ids`` in windows with ``hook`` seeing each module's input."""
    handles = [m.register_forward_pre_hook(hook) for m in modules]
    try:
        with torch.no_grad():
            for start in range(0, max(1, len(token_ids) - 1), window):
                chunk = token_ids[start : start + window]
                if chunk:
                    model(torch.tensor([chunk], dtype=torch.int64))
    finally:
        for handle in handles:
            handle.remove()
