"""Mixed precision for int4 exports: the MatMul weights kept at int8, as llama.cpp's Q4_K_M keeps
its most sensitive tensors at more bits.

A weight is kept at int8 (blocks of :data:`~edge_sdk.planner.precision.INT8_GROUP_SIZE` inputs,
the int8 default's form, so onnxruntime runs it with its 8-bit kernel) when its decoder layer is
in ``int8_layers`` (negative indices count from the end: ``(0, -1)`` is the first and the last
layer) or its name is in ``int8_matmuls`` (``down_proj``: that MatMul in every layer). The others
are int4. MatMuls that share an input are stored as one in the fused graph, so they are kept
together: q/k/v, and gate/up.
"""

from __future__ import annotations

from edge_sdk.errors import ConfigError

__all__ = ["SHARED_INPUT", "check_mixed", "keeps_int8", "mixed_label"]

SHARED_INPUT = (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj"))


def check_mixed(layers: tuple[int, ...], matmuls: tuple[str, ...]) -> None:
    """Raise :class:`~edge_sdk.ConfigError` unless ``layers`` are integers and ``matmuls`` names
    that keep the MatMuls sharing an input together."""
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in layers):
        raise ConfigError(f"int8_layers must be layer indices (integers), got {list(layers)}")
    if not all(isinstance(m, str) and m for m in matmuls):
        raise ConfigError(f"int8_matmuls must be MatMul names such as 'down_proj', got {matmuls}")
    for together in SHARED_INPUT:
        named = [m for m in together if m in matmuls]
        if named and len(named) != len(together):
            raise ConfigError(
                f"int8_matmuls: {', '.join(together)} share one input (one fused MatMul): "
                f"keep all of them at int8 or none, got {', '.join(named)}"
            )


def keeps_int8(
    layers: tuple[int, ...], matmuls: tuple[str, ...], index: int, num_layers: int, name: str
) -> bool:
    """Whether MatMul ``name`` of decoder layer ``index`` (of ``num_layers``) is stored int8."""
    return name in matmuls or any(
        i % num_layers == index for i in layers if -num_layers <= i < num_layers
    )


def mixed_label(layers: tuple[int, ...], matmuls: tuple[str, ...]) -> str:
    """A label suffix such as ``+int8[layers 0,-1; down_proj]`` (empty when nothing is kept)."""
    parts = ([f"layers {','.join(str(i) for i in layers)}"] if layers else []) + list(matmuls)
    return f"+int8[{'; '.join(parts)}]" if parts else ""
