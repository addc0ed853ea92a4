"""The PyTorch reference, run one layer at a time over token windows (calibration, evaluation,
parity): hidden states pass through a layer's weights, then the next layer is read.

A :class:`Windows` holds the hidden states [1, S, E] of independent token windows (each from
position 0) or of one prompt followed by single decode tokens (each on the cache of the ones
before it). Nothing here holds more than one layer's weights.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from edge_sdk.config import ModelConfig
from edge_sdk.exporters.model import attention_bias, rope_inverse_frequencies

__all__ = ["Hook", "InputStats", "Windows", "text_windows"]

Hook = Callable[[nn.Module, tuple[Tensor, ...]], None]


def text_windows(token_ids: list[int], window: int) -> list[list[int]]:
    """Inputs of the teacher-forced windows (each ``window`` long at most, the last target
    being the token after it), as the accuracy comparison reads them."""
    return [
        token_ids[start : min(start + window + 1, len(token_ids)) - 1]
        for start in range(0, len(token_ids) - 1, window)
        if min(start + window + 1, len(token_ids)) - start >= 2
    ]


@dataclass
class Windows:
    """Hidden states of token windows, advanced layer by layer.

    ``decode``: the first window is a prompt and each later one a single token decoded after
    it (on the layer's KV cache); otherwise every window starts at position 0.
    """

    config: ModelConfig
    hidden: list[Tensor] = field(default_factory=list)
    decode: bool = False

    @classmethod
    def embed(
        cls,
        config: ModelConfig,
        lookup: Callable[[np.ndarray], np.ndarray],
        windows: Sequence[Sequence[int]],
        decode: bool = False,
    ) -> Windows:
        """The embedding rows of each window's tokens (``lookup(ids)`` gives them [n, E]), times
        the model's embedding scale."""
        scale = config.embedding_scale
        hidden = [torch.from_numpy(lookup(np.asarray(w, np.int64)))[None] for w in windows]
        if scale != 1.0:
            hidden = [h * torch.tensor(scale, dtype=h.dtype) for h in hidden]
        return cls(config, hidden, decode)

    @staticmethod
    def _angles(
        start: int, length: int, dtype: torch.dtype, inv_freq: Tensor
    ) -> tuple[Tensor, Tensor]:
        positions = torch.arange(start, start + length)[None]
        freqs = positions[..., None].float() * inv_freq
        angles = torch.cat((freqs, freqs), dim=-1)
        return angles.cos().to(dtype), angles.sin().to(dtype)

    def run(
        self, layer: nn.Module, index: int, hooks: Sequence[tuple[nn.Module, Hook]] = ()
    ) -> list[Tensor]:
        """Each window through ``layer``, layer ``index`` of the model (its RoPE and window);
        hooks see the inputs of their modules. The outputs."""
        handles = [module.register_forward_pre_hook(hook) for module, hook in hooks]
        outputs: list[Tensor] = []
        past: tuple[Tensor, Tensor] | None = None  # K and V, or a linear layer's state
        start = 0
        inv_freq = rope_inverse_frequencies(self.config, self.config.local_rope(index))
        window = self.config.layer_window(index)
        linear = self.config.layer_type(index) == "linear_attention"
        try:
            with torch.no_grad():
                for x in self.hidden:
                    length = int(x.shape[1])
                    if not self.decode:
                        start, past = 0, None
                    if linear:  # (x, state) -> (out, state): no positions, no mask
                        out, present = layer(x, past)
                    else:
                        cos, sin = self._angles(start, length, x.dtype, inv_freq)
                        mask = torch.ones(1, start + length, dtype=torch.int64)
                        bias = attention_bias(mask, length, x.dtype, window)
                        out, present = layer(x, cos, sin, bias, past)
                    outputs.append(out)
                    past, start = present, start + length
        finally:
            for handle in handles:
                handle.remove()
        return outputs

    def advance(
        self, layer: nn.Module, index: int, hooks: Sequence[tuple[nn.Module, Hook]] = ()
    ) -> None:
        """Replace the hidden states by the outputs of ``layer`` (layer ``index``)."""
        self.hidden = self.run(layer, index, hooks)

    def rows(self) -> Tensor:
        """Every position's hidden state [N, E]."""
        return torch.cat([h[0] for h in self.hidden])


class InputStats:
    """Hooks that collect, per module, its inputs' mean square [K], the first rows [n, K] and
    ``2 X^T X / n`` (float64 [K, K]) as asked.

    For the Hessian the inputs are kept (float32 [n, K], as the layer computes) and multiplied
    once, as one float32 matmul over the whole calibration batch, when it is asked for; modules
    fed the same tensor (q/k/v, gate/up) share that product (2-2.5x faster than a float64 product
    per window and module, measured on SmolLM2-135M's shapes).
    """

    def __init__(self, moments: bool = False, rows: int = 0, hessian: bool = False) -> None:
        self.want_moments, self.want_rows, self.want_hessian = moments, rows, hessian
        self.sums: dict[int, Tensor] = {}
        self.counts: dict[int, int] = {}
        self.row_parts: dict[int, list[Tensor]] = {}
        self.inputs: dict[int, list[Tensor]] = {}
        self._products: dict[tuple[int, ...], tuple[list[Tensor], Tensor]] = {}

    def hooks(self, modules: Sequence[nn.Module]) -> list[tuple[nn.Module, Hook]]:
        """One hook per module."""
        return [(m, self.observe) for m in modules]

    def observe(self, module: nn.Module, args: tuple[Tensor, ...]) -> None:
        """Add the input ``args[0]`` of ``module`` (a forward pre-hook)."""
        key = id(module)
        x = args[0].detach().reshape(-1, args[0].shape[-1])
        self.counts[key] = self.counts.get(key, 0) + x.shape[0]
        if self.want_moments:
            xd = x.double()
            self.sums[key] = self.sums.get(key, 0) + (xd * xd).sum(0)
        if self.want_hessian:
            self.inputs.setdefault(key, []).append(x)  # the layer's own tensor: no copy
        if self.want_rows:
            have = sum(len(r) for r in self.row_parts.get(key, []))
            if have < self.want_rows:
                self.row_parts.setdefault(key, []).append(x[: self.want_rows - have].clone())

    def moments(self, module: nn.Module) -> np.ndarray:
        """Mean square of each input channel [K]."""
        result: np.ndarray = (self.sums[id(module)] / self.counts[id(module)]).numpy()
        return result

    def hessian(self, module: nn.Module) -> Tensor:
        """``2 X^T X / n`` ([K, K] float64, the caller's own copy), once per module."""
        parts = self.inputs.pop(id(module))
        same = tuple(id(p) for p in parts)
        if same not in self._products:  # keyed by the tensors, held so their ids stay theirs
            x = torch.cat(parts).float()  # [n, K]
            self._products[same] = (parts, x.T @ x)
        product = self._products[same][1]
        if not any(same == tuple(id(p) for p in rest) for rest in self.inputs.values()):
            del self._products[same]  # no other module reads it
        return product.double().mul_(2.0 / self.counts[id(module)])

    def first_rows(self, module: nn.Module) -> Tensor:
        """The first input rows collected [n, K]."""
        return torch.cat(self.row_parts[id(module)])
