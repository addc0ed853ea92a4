"""Per-input-channel scaling folded into the model (exact): the shared part of AWQ and SmoothQuant.

A Linear ``y = x W^T`` equals ``(x / s) (W diag(s))^T`` for any positive ``s`` [K]. The division
is folded into the op that produces ``x``, so the float model computes the same function (to
float rounding) and no op is added to the graph:

    group            produces x                    scaled Linears
    attention input  input_layernorm.weight / s    q_proj, k_proj, v_proj
    MLP input        post_attention_layernorm / s  gate_proj, up_proj
    o_proj input     v_proj rows (and bias) / s    o_proj (s shared by a KV head's G query heads)
    down_proj input  up_proj rows / s              down_proj   (silu(gate) * up is linear in up)

The LM head is not scaled (its weight is the embedding table when tied).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import cast

import torch
from torch import Tensor, nn

from edge_sdk.exporters.model import LiteForCausalLM
from edge_sdk.exporters.quantize.calibration import run_with_input_hooks

__all__ = ["ScaleGroup", "collect_inputs", "fold_scale", "one_thread", "scale_groups"]


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread: the small per-column ops of GPTQ/AWQ are faster and do not stall
    (10x measured) when the cores are shared, and results do not depend on the thread count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class ScaleGroup:
    """Linears sharing one input, and the op (a norm or a Linear's rows) that produces it."""

    name: str
    producer: nn.Module  # RMSNorm (divide its weight) or nn.Linear (divide its output rows)
    linears: tuple[nn.Linear, ...]
    query_groups: int = 1  # o_proj: input channels (kv, g, d) share the scale of v's (kv, d)
    head_dim: int = 1

    def expand(self, s: Tensor) -> Tensor:
        """The producer's scale [P] as the Linears' input scale [K]."""
        if self.query_groups == 1:
            return s
        kv_d = s.reshape(-1, 1, self.head_dim)
        return kv_d.expand(-1, self.query_groups, -1).reshape(-1)

    def reduce(self, stat: Tensor, how: str = "mean") -> Tensor:
        """A per-input-channel statistic [K] reduced (mean or max) to the producer's channels
        [P]."""
        if self.query_groups == 1:
            return stat
        per_head = stat.reshape(-1, self.query_groups, self.head_dim)
        return (per_head.amax(dim=1) if how == "max" else per_head.mean(dim=1)).reshape(-1)


def scale_groups(model: LiteForCausalLM) -> list[ScaleGroup]:
    """The groups of every decoder layer, in order (the model family's own)."""
    from edge_sdk.exporters.families import family_of  # the families build on ScaleGroup

    family = family_of(model.config)
    return [
        group
        for index, layer in enumerate(model.decoder_layers())
        for group in family.scale_groups(model.config, layer, index)
    ]


def collect_inputs(
    model: LiteForCausalLM,
    linears: list[nn.Linear],
    token_ids: list[int],
    window: int,
    max_rows: int = 1024,
) -> dict[int, Tensor]:
    """Up to ``max_rows`` input rows [n, K] (the first tokens) of each of ``linears``, by ``id``."""
    rows: dict[int, list[Tensor]] = {}

    def hook(module: nn.Module, args: tuple[Tensor, ...]) -> None:
        have = sum(len(r) for r in rows.get(id(module), []))
        if have < max_rows:
            x = args[0].detach().reshape(-1, args[0].shape[-1])
            rows.setdefault(id(module), []).append(x[: max_rows - have].clone())

    run_with_input_hooks(model, linears, hook, token_ids, window)
    return {key: torch.cat(parts) for key, parts in rows.items()}


def fold_scale(group: ScaleGroup, s: Tensor) -> None:
    """Divide the producer's output channels by ``s`` [P] and multiply the Linears' inputs."""
    s = s.to(torch.float32)
    with torch.no_grad():
        producer = group.producer
        if isinstance(producer, nn.Linear):
            producer.weight.div_(s[:, None])
            if producer.bias is not None:
                producer.bias.div_(s)
        else:
            cast(Tensor, producer.weight).div_(s)
        s_in = group.expand(s)
        for lin in group.linears:
            lin.weight.mul_(s_in[None, :])
