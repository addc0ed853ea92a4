"""The manifest's graph records: the standard graph, the fused onnxruntime graphs (CPU and
CUDA), I/O names."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing_extensions import Self

from edge_sdk.manifest._fields import Fields, emit, invalid

__all__ = ["CudaGraph", "FusedGraph", "GraphRecord", "IoNames", "TensorSpec"]


def _past(layers: int) -> tuple[str, ...]:
    return tuple(f"past_key_values.{i}.{part}" for i in range(layers) for part in ("key", "value"))


def _present(layers: int) -> tuple[str, ...]:
    return tuple(f"present.{i}.{part}" for i in range(layers) for part in ("key", "value"))


@dataclass(frozen=True)
class IoNames:
    """What each graph input and output is called, by role (``graph.io_names``).

    ``past`` / ``present``: the KV cache, key then value for each layer. The standard graph
    takes ``attention_mask`` and ``position_ids``; the fused graph ``seqlens_k`` and
    ``total_sequence_length`` instead (the others are None).
    """

    input_ids: str
    logits: str
    past: tuple[str, ...]
    present: tuple[str, ...]
    attention_mask: str | None = None
    position_ids: str | None = None
    seqlens_k: str | None = None
    total_sequence_length: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def standard(cls, layers: int) -> Self:
        """The conventional names of the standard graph (bundles that do not record them)."""
        return cls(
            "input_ids", "logits", _past(layers), _present(layers), "attention_mask", "position_ids"
        )

    @classmethod
    def fused(cls, layers: int) -> Self:
        """The conventional names of the fused onnxruntime graph."""
        return cls(
            "input_ids",
            "logits",
            _past(layers),
            _present(layers),
            seqlens_k="seqlens_k",
            total_sequence_length="total_sequence_length",
        )

    @property
    def inputs(self) -> tuple[str, ...]:
        """Every input name: ids, positions, then the cache."""
        positions = (
            self.attention_mask,
            self.position_ids,
            self.seqlens_k,
            self.total_sequence_length,
        )
        return (self.input_ids, *(n for n in positions if n is not None), *self.past)

    @property
    def outputs(self) -> tuple[str, ...]:
        """Every output name: logits, then the cache."""
        return (self.logits, *self.present)

    @classmethod
    def from_dict(cls, data: object, where: str = "graph.io_names") -> Self:
        """Parse and check the JSON form (see :meth:`to_dict`)."""
        f = Fields(data, where)
        past, present = f.strings("past_key_values"), f.strings("present")
        if past is None or present is None:
            missing = "past_key_values" if past is None else "present"
            raise invalid(f.path(missing), "is missing (a list of strings)")
        if len(past) != len(present):
            raise invalid(where, "must name as many present outputs as past_key_values inputs")
        return cls(
            f.text("input_ids"),
            f.text("logits"),
            past,
            present,
            f.opt_text("attention_mask"),
            f.opt_text("position_ids"),
            f.opt_text("seqlens_k"),
            f.opt_text("total_sequence_length"),
            f.extra(),
        )

    def to_dict(self) -> dict[str, object]:
        """JSON form: one key per role, the cache as lists."""
        return emit(
            [
                ("input_ids", self.input_ids),
                ("attention_mask", self.attention_mask),
                ("position_ids", self.position_ids),
                ("seqlens_k", self.seqlens_k),
                ("total_sequence_length", self.total_sequence_length),
                ("past_key_values", list(self.past)),
                ("logits", self.logits),
                ("present", list(self.present)),
            ],
            frozenset(),
            self.extra,
        )

    def check_layers(self, layers: int, where: str) -> None:
        """Raise when the cache names do not cover ``layers`` layers (key and value each)."""
        if len(self.past) != 2 * layers:
            raise invalid(
                f"{where}.past_key_values",
                f"has {len(self.past)} names, the model's {layers} layers need {2 * layers}",
            )


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: name, element type, shape (ints and symbolic dimensions)."""

    name: str
    dtype: str
    shape: tuple[int | str, ...]
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: object, where: str = "graph.inputs[0]") -> Self:
        """Parse and check the JSON form."""
        f = Fields(data, where)
        name, dtype = f.text("name"), f.text("dtype")
        shape = f.raw("shape")
        if not isinstance(shape, list) or not all(
            isinstance(d, (int, str)) and not isinstance(d, bool) for d in shape
        ):
            raise invalid(f.path("shape"), "must be a list of integers and dimension names")
        return cls(name, dtype, tuple(shape), f.extra())

    def to_dict(self) -> dict[str, object]:
        """JSON form."""
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape), **self.extra}


def _specs(f: Fields, key: str) -> tuple[TensorSpec, ...] | None:
    return f.objects(key, TensorSpec.from_dict)


@dataclass(frozen=True)
class GraphRecord:
    """The standard graph (``graph``): file, opset, I/O description, context, KV layout."""

    file: str
    opset: int | None = None
    standard_ops_only: bool | None = None
    inputs: tuple[TensorSpec, ...] | None = None
    outputs: tuple[TensorSpec, ...] | None = None
    max_sequence_length: int | None = None
    kv_cache: dict[str, Any] | None = None
    io_names: IoNames | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    present: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    @classmethod
    def from_dict(cls, data: object, where: str = "graph") -> Self:
        """Parse and check the JSON form."""
        f = Fields(data, where)
        record = cls(
            f.text("file"),
            f.opt_integer("opset"),
            f.opt_bool("standard_ops_only"),
            _specs(f, "inputs"),
            _specs(f, "outputs"),
            f.opt_integer("max_sequence_length"),
            f.opt_mapping("kv_cache"),
            f.opt_obj("io_names", IoNames.from_dict),
            f.extra(),
        )
        return replace(record, present=f.present())

    def names(self, layers: int) -> IoNames:
        """The recorded I/O names, or the conventional ones for a bundle that has none."""
        return self.io_names or IoNames.standard(layers)

    def to_dict(self) -> dict[str, object]:
        """JSON form (the keys it was read with, plus any it did not know)."""
        return emit(
            [
                ("file", self.file),
                ("opset", self.opset),
                ("standard_ops_only", self.standard_ops_only),
                ("inputs", None if self.inputs is None else [s.to_dict() for s in self.inputs]),
                ("outputs", None if self.outputs is None else [s.to_dict() for s in self.outputs]),
                ("io_names", None if self.io_names is None else self.io_names.to_dict()),
                ("max_sequence_length", self.max_sequence_length),
                ("kv_cache", self.kv_cache),
            ],
            self.present,
            self.extra,
        )


@dataclass(frozen=True)
class FusedGraph:
    """The onnxruntime-only graph (``onnxruntime.fused_graph``, ``model.ort.onnx``).

    ``parity_vs_pytorch``: the graph against the PyTorch reference with its own stored weights
    (bundles before the default int8 bundle split its weights recorded ``parity_vs_standard``,
    the graph against the standard one). ``quantized_vs_float``: its accuracy gate's figures
    (the standard graph's are ``accuracy.quantized_vs_float``). ``weights``: how its weights
    differ from the standard graph's, in words.
    """

    file: str
    provider: str | None = None
    io_names: IoNames | None = None
    parity_vs_standard: dict[str, Any] | None = None
    parity_vs_pytorch: dict[str, Any] | None = None
    quantized_vs_float: dict[str, Any] | None = None
    weights: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    present: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    @classmethod
    def from_dict(cls, data: object, where: str = "onnxruntime.fused_graph") -> Self:
        """Parse and check the JSON form."""
        f = Fields(data, where)
        record = cls(
            f.text("file"),
            f.opt_text("provider"),
            f.opt_obj("io_names", IoNames.from_dict),
            f.opt_mapping("parity_vs_standard"),
            f.opt_mapping("parity_vs_pytorch"),
            f.opt_mapping("quantized_vs_float"),
            f.opt_text("weights"),
            f.extra(),
        )
        return replace(record, present=f.present())

    def names(self, layers: int) -> IoNames:
        """The recorded I/O names, or the conventional ones for a bundle that has none."""
        return self.io_names or IoNames.fused(layers)

    def to_dict(self) -> dict[str, object]:
        """JSON form (the keys it was read with, plus any it did not know)."""
        return emit(
            [
                ("file", self.file),
                ("provider", self.provider),
                ("io_names", None if self.io_names is None else self.io_names.to_dict()),
                ("parity_vs_standard", self.parity_vs_standard),
                ("parity_vs_pytorch", self.parity_vs_pytorch),
                ("quantized_vs_float", self.quantized_vs_float),
                ("weights", self.weights),
            ],
            self.present,
            self.extra,
        )


@dataclass(frozen=True)
class CudaGraph:
    """The CUDA fused graph (``onnxruntime.cuda_graph``, ``model.cuda.onnx``): the fused graph
    with fp16 activations and KV cache, for onnxruntime's CUDA EP.

    ``dtype``: its element types, in words (the runtime reads them from the session).
    ``cpu_check``: its top-1 agreement with the fp32 fused graph on the CPU EP, as exported.
    Its I/O names are the fused graph's roles (``seqlens_k``, ``total_sequence_length``).
    """

    file: str
    provider: str | None = None
    io_names: IoNames | None = None
    dtype: str | None = None
    weights: str | None = None
    inputs: str | None = None
    cpu_check: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    present: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    @classmethod
    def from_dict(cls, data: object, where: str = "onnxruntime.cuda_graph") -> Self:
        """Parse and check the JSON form."""
        f = Fields(data, where)
        record = cls(
            f.text("file"),
            f.opt_text("provider"),
            f.opt_obj("io_names", IoNames.from_dict),
            f.opt_text("dtype"),
            f.opt_text("weights"),
            f.opt_text("inputs"),
            f.opt_mapping("cpu_check"),
            f.extra(),
        )
        return replace(record, present=f.present())

    def names(self, layers: int) -> IoNames:
        """The recorded I/O names, or the fused graph's conventional ones."""
        return self.io_names or IoNames.fused(layers)

    def to_dict(self) -> dict[str, object]:
        """JSON form (the keys it was read with, plus any it did not know)."""
        return emit(
            [
                ("file", self.file),
                ("provider", self.provider),
                ("dtype", self.dtype),
                ("weights", self.weights),
                ("inputs", self.inputs),
                ("cpu_check", self.cpu_check),
                ("io_names", None if self.io_names is None else self.io_names.to_dict()),
            ],
            self.present,
            self.extra,
        )
