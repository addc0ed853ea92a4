"""The streamed export's graph stage: both graphs written from the weights, one layer at a time.

For each decoder layer in turn: read its tensors (memory-mapped or dequantized on demand), build
the float PyTorch layer, scale and quantize it (:class:`LayerQuantizer`), write it into the
standard graph and the fused graph (the family's emitters; int8 per output channel in the first,
in blocks in the second when the config has int8 blocks: :class:`LayerWeights`), move the
calibration, evaluation and parity windows past it, and let it go. What stays in memory is one
layer, the quantized embedding table(s), and the hidden states of a few thousand tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edge_sdk.cli_support import Progress
from edge_sdk.config import ModelConfig
from edge_sdk.exporters.families import family_of
from edge_sdk.exporters.families.base import Family
from edge_sdk.exporters.fused_graph import ORT_GRAPH_FILE
from edge_sdk.exporters.model import RMSNorm
from edge_sdk.exporters.quantize.config import QuantConfig
from edge_sdk.exporters.sources import ModelSource
from edge_sdk.exporters.stream.graphs import (
    Table,
    fused_prelude,
    fused_tail,
    layer_kind,
    standard_prelude,
    standard_tail,
)
from edge_sdk.exporters.stream.heads import (
    EMBEDDING,
    head_logits,
    head_weight,
    stored_table,
    table_bits,
)
from edge_sdk.exporters.stream.layer_quant import LayerQuantizer, LayerWeights, dequantized_copy
from edge_sdk.exporters.stream.layerwise import InputStats, Windows
from edge_sdk.exporters.stream.onnx_builder import GraphBuilder
from edge_sdk.exporters.stream.ops import FusedState

__all__ = ["StreamedGraphs", "Texts", "write_graphs"]


@dataclass(frozen=True)
class Texts:
    """Token windows the layer pass carries: calibration, evaluation, and the parity prompt
    (a prefill of all but the last ``decode`` tokens, then those one at a time)."""

    calibration: list[list[int]]
    evaluation: list[list[int]]
    parity: list[int]
    decode: int = 4


@dataclass
class StreamedGraphs:
    """What :func:`write_graphs` wrote and computed on the way."""

    standard: list[Path]
    fused: list[Path]
    parity_logits: np.ndarray  # [len(parity), V]: the PyTorch reference with the stored weights
    evaluation_hidden: list[torch.Tensor]  # per evaluation window: final-normed float states
    quantizer: LayerQuantizer
    fused_parity_logits: np.ndarray | None = None  # the same with the fused graph's weights

    @property
    def fused_reference(self) -> np.ndarray:
        """The PyTorch reference logits of the parity prompt with the fused graph's weights."""
        return self.parity_logits if self.fused_parity_logits is None else self.fused_parity_logits


def graph_opset(quant: QuantConfig, standard: bool = False) -> int:
    """21 where blocked ``DequantizeLinear`` or int4 need it, else 18 (``standard``: the standard
    graph's, whose int8 weights are per output channel)."""
    int8_blocked = quant.method == "int8" and bool(quant.group_size) and not standard
    return 21 if quant.precision == "int4" or int8_blocked else 18


def write_graphs(
    source: ModelSource,
    quant: QuantConfig,
    folder: Path,
    max_seq_len: int,
    texts: Texts,
    fused: bool,
    progress: Progress,
) -> StreamedGraphs:
    """Write ``model.onnx`` (and ``model.ort.onnx`` when ``fused``) into ``folder``."""
    family_of(source.config)  # an unsupported family fails before anything is written
    ort = GraphBuilder(folder / ORT_GRAPH_FILE, "edge-sdk-ort") if fused else None
    standard = GraphBuilder(folder / "model.onnx", "edge-sdk", lender=ort)
    try:
        return _write(source, quant, texts, standard, ort, max_seq_len, progress)
    except BaseException:
        standard.discard()
        if ort is not None:
            ort.discard()
        raise


@dataclass
class _Streams:
    """The windows the layer pass carries (see :class:`Texts`)."""

    float_calib: Windows | None
    quant_calib: Windows | None
    evaluation: Windows
    parity: Windows
    fused_parity: Windows | None  # the parity prompt through the fused graph's weights, if other


def _streams(
    config: ModelConfig,
    quant: QuantConfig,
    texts: Texts,
    table_float: np.ndarray,
    tables: tuple[Table, Table | None],
) -> _Streams:
    """Embedded windows: calibration through the float layers (int8 statistics, AWQ) and through
    the quantized ones (GPTQ), evaluation (float), parity (the standard graph's stored weights,
    and the fused graph's when they differ: ``tables[1]`` not None)."""
    calibrating = quant.method == "int8" or quant.act_scale
    calib = texts.calibration
    split = max(1, len(texts.parity) - texts.decode)
    prompt = [texts.parity[:split], *[[t] for t in texts.parity[split:]]]

    def floats(ids: np.ndarray) -> np.ndarray:
        rows: np.ndarray = table_float[ids]
        return rows

    return _Streams(
        Windows.embed(config, floats, calib) if calibrating else None,
        Windows.embed(config, floats, calib) if quant.method == "gptq" else None,
        Windows.embed(config, floats, texts.evaluation),
        Windows.embed(config, tables[0].rows, prompt, decode=True),
        Windows.embed(config, tables[1].rows, prompt, decode=True) if tables[1] else None,
    )


def _write(
    source: ModelSource,
    quant: QuantConfig,
    texts: Texts,
    standard: GraphBuilder,
    ort: GraphBuilder | None,
    max_seq_len: int,
    progress: Progress,
) -> StreamedGraphs:
    config, weights = source.config, source.weights
    family = family_of(config)
    table_float = weights.get(EMBEDDING)
    final = weights.get("model.norm.weight") + np.float32(config.norm_offset)
    # a 4-bit table's clipping weighs each column by the square of the final norm's weight: the
    # tied head's input is the normalized state times it
    table_moments = np.square(final, dtype=np.float32)
    bits = table_bits(config, quant)
    table = stored_table(table_float, quant, True, bits, table_moments)  # the standard graph's
    split = quant.int8_blocks  # the fused graph keeps int8 blocks: its own weights
    blocked_table = split and quant.method == "int8"  # int4 keeps one scale per row in both
    fused_table = stored_table(table_float, quant) if blocked_table else table
    streams = _streams(config, quant, texts, table_float, (table, fused_table if split else None))
    del table_float  # the windows hold copies of their rows
    # the fused graph writes each part first: the standard graph reads the tensors both store
    # alike from its data file (GraphBuilder's lender)
    state, caches = (
        fused_prelude(ort, config, fused_table, max_seq_len) if ort else (FusedState(""), {})
    )
    x, shared = standard_prelude(standard, config, table)
    quantizer = LayerQuantizer(family, config, quant, streams.float_calib, streams.quant_calib)
    for index in range(config.num_layers):
        prefix = f"model.layers.{index}."
        tensors = {
            name[len(prefix) :]: weights.get(name) for name in family.layer_shapes(config, index)
        }
        layer = family.reference_layer(config, tensors)
        del tensors
        matmuls = quantizer.quantize(layer, index)
        streams.evaluation.advance(layer, index)
        _advance_parity(streams, family, layer, matmuls, index)
        stored = family.layer_tensors(matmuls.standard_layer or layer, index, matmuls.standard)
        if ort is not None:  # written first: the standard graph borrows what both store alike
            cache = caches[config.local_rope(index)]
            fused_stored = stored
            if matmuls.fused is not matmuls.standard:
                fused_stored = family.layer_tensors(layer, index, matmuls.fused)
            state = family.emit_fused(ort, config, state, cache, fused_stored)
            del fused_stored
        x = family.emit_standard(standard, config, x, shared[layer_kind(config, index)], stored)
        del layer, matmuls, stored
        progress.update(index + 1, config.num_layers, f"layers ({quant.label})")
    norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
    norm.weight.data = torch.from_numpy(final)
    moments = _head_inputs(norm, streams.float_calib, moments=True)
    hessian = _head_inputs(norm, streams.quant_calib, hessian=True)
    head_moments = moments.moments(norm) if moments else None
    fused_head = head_weight(
        config,
        quant,
        weights,
        head_moments,
        hessian.hessian(norm) if hessian and quant.lm_head_bits == 4 else None,
    )
    head = fused_head
    if quant.precision == "int8" and split:  # int8 blocks: the standard graph's per channel
        head = head_weight(config, quant, weights, head_moments, None, per_channel=True)
    if ort is not None:
        fused_tail(ort, config, state, final, fused_table, fused_head)
    standard_tail(standard, config, x, final, table, head)
    with torch.no_grad():
        parity_logits = head_logits(norm(streams.parity.rows()), table, head)
        fused_parity_logits = (
            head_logits(norm(streams.fused_parity.rows()), fused_table, fused_head)
            if streams.fused_parity is not None
            else None
        )
        evaluation_hidden = [norm(h[0]) for h in streams.evaluation.hidden]
    return StreamedGraphs(
        standard=standard.save(graph_opset(quant, standard=True)),
        fused=ort.save(graph_opset(quant)) if ort is not None else [],
        parity_logits=parity_logits,
        evaluation_hidden=evaluation_hidden,
        quantizer=quantizer,
        fused_parity_logits=fused_parity_logits,
    )


def _advance_parity(
    streams: _Streams, family: Family, layer: torch.nn.Module, matmuls: LayerWeights, index: int
) -> None:
    """Move the parity prompt past ``layer`` as each graph stores it."""
    standard = matmuls.standard_layer or layer
    streams.parity.advance(dequantized_copy(family, standard, matmuls.standard), index)
    if streams.fused_parity is not None:
        streams.fused_parity.advance(dequantized_copy(family, layer, matmuls.fused), index)


def _head_inputs(norm: RMSNorm, calib: Windows | None, **wanted: bool) -> InputStats | None:
    """Statistics (``moments``, ``hessian``) of the LM head's input over the calibration
    windows: mean squares for int8 clipping (float layers), GPTQ's Hessian (quantized ones)."""
    if calib is None:
        return None
    stats = InputStats(**wanted)
    with torch.no_grad():
        stats.observe(norm, (norm(calib.rows()),))
    return stats
