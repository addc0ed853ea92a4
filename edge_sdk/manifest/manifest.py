"""The whole ``manifest.json`` as one typed record (see :mod:`edge_sdk.bundle` for the layout)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing_extensions import Self

from edge_sdk.manifest._fields import Fields, emit
from edge_sdk.manifest.accuracy import Accuracy
from edge_sdk.manifest.engine import EngineRecord
from edge_sdk.manifest.graphs import CudaGraph, FusedGraph, GraphRecord
from edge_sdk.manifest.quantization import Quantization

__all__ = ["FileRecord", "Manifest", "ModelRecord", "OrtRecord", "TokenizerRecord"]


@dataclass(frozen=True)
class FileRecord:
    """One bundle file's size and SHA-256 (``files[name]``)."""

    size: int
    sha256: str
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: object, where: str = "files") -> Self:
        """Parse and check the JSON form."""
        f = Fields(data, where)
        return cls(f.integer("size"), f.text("sha256"), f.extra())

    def to_dict(self) -> dict[str, object]:
        """JSON form."""
        return {"size": self.size, "sha256": self.sha256, **self.extra}


@dataclass(frozen=True)
class ModelRecord:
    """``model``: its name, where it came from, its config (a :class:`~edge_sdk.ModelConfig`
    dict) and parameter count."""

    config: dict[str, Any]
    name: str | None = None
    source: str | None = None
    parameters: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    present: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    @classmethod
    def from_dict(cls, data: object, where: str = "model") -> Self:
        """Parse and check the JSON form."""
        f = Fields(data, where)
        record = cls(
            f.mapping("config"),
            f.opt_text("name"),
            f.opt_text("source"),
            f.opt_integer("parameters"),
            f.extra(),
        )
        return replace(record, present=f.present())

    def to_dict(self) -> dict[str, object]:
        """JSON form."""
        return emit(
            [
                ("name", self.name),
                ("source", self.source),
                ("config", self.config),
                ("parameters", self.parameters),
            ],
            self.present,
            self.extra,
        )


@dataclass(frozen=True)
class TokenizerRecord:
    """``tokenizer``: the file and its kind (``"tokenizers"`` JSON)."""

    file: str
    kind: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    present: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    @classmethod
    def from_dict(cls, data: object, where: str = "tokenizer") -> Self:
        """Parse and check the JSON form."""
        f = Fields(data, where)
        record = cls(f.text("file"), f.opt_text("kind"), f.extra())
        return replace(record, present=f.present())

    def to_dict(self) -> dict[str, object]:
        """JSON form."""
        return emit([("file", self.file), ("kind", self.kind)], self.present, self.extra)


@dataclass(frozen=True)
class OrtRecord:
    """``onnxruntime``: session config entries, the fused CPU and CUDA graphs (or why there is
    none)."""

    session_config: dict[str, Any] | None = None
    fused_graph: FusedGraph | None = None
    fused_graph_skipped: str | None = None
    cuda_graph: CudaGraph | None = None
    cuda_graph_skipped: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    present: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    @classmethod
    def from_dict(cls, data: object, where: str = "onnxruntime") -> Self:
        """Parse and check the JSON form."""
        f = Fields(data, where)
        record = cls(
            f.opt_mapping("session_config"),
            f.opt_obj("fused_graph", FusedGraph.from_dict),
            f.opt_text("fused_graph_skipped"),
            f.opt_obj("cuda_graph", CudaGraph.from_dict),
            f.opt_text("cuda_graph_skipped"),
            f.extra(),
        )
        return replace(record, present=f.present())

    def to_dict(self) -> dict[str, object]:
        """JSON form."""
        fused, cuda = self.fused_graph, self.cuda_graph
        return emit(
            [
                ("session_config", self.session_config),
                ("fused_graph", None if fused is None else fused.to_dict()),
                ("fused_graph_skipped", self.fused_graph_skipped),
                ("cuda_graph", None if cuda is None else cuda.to_dict()),
                ("cuda_graph_skipped", self.cuda_graph_skipped),
            ],
            self.present,
            self.extra,
        )


@dataclass(frozen=True)
class Manifest:
    """``manifest.json``, checked: every record typed, unknown keys kept in ``extra``.

    ``Manifest.from_dict(d).to_dict() == d`` for every manifest the exporter writes. Bundles made
    before the graphs recorded their I/O names load too (``graph.names(layers)`` then gives the
    conventional names).
    """

    format: str
    format_version: int
    model: ModelRecord
    tokenizer: TokenizerRecord
    graph: GraphRecord
    precision: Quantization
    files: dict[str, FileRecord]
    created: str | None = None
    chat: dict[str, Any] | None = None
    onnxruntime: OrtRecord | None = None
    accuracy: Accuracy | None = None
    environment: dict[str, Any] | None = None
    engines: tuple[EngineRecord, ...] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    present: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    @classmethod
    def from_dict(cls, data: object, where: str = "") -> Self:
        """Parse and check a manifest; :class:`~edge_sdk.BundleError` names a wrong field."""
        f = Fields(data, where)
        files = f.mapping("files")
        record = cls(
            f.text("format"),
            f.integer("format_version"),
            f.obj("model", ModelRecord.from_dict),
            f.obj("tokenizer", TokenizerRecord.from_dict),
            f.obj("graph", GraphRecord.from_dict),
            f.obj("precision", Quantization.from_dict),
            {n: FileRecord.from_dict(r, f"{f.path('files')}.{n}") for n, r in files.items()},
            f.opt_text("created"),
            f.opt_mapping("chat"),
            f.opt_obj("onnxruntime", OrtRecord.from_dict),
            f.opt_obj("accuracy", Accuracy.from_dict),
            f.opt_mapping("environment"),
            f.objects("engines", EngineRecord.from_dict),
            f.extra(),
        )
        record._check_names(f)
        return replace(record, present=f.present())

    def _check_names(self, f: Fields) -> None:
        layers = self.model.config.get("num_layers")
        if not isinstance(layers, int) or isinstance(layers, bool):
            return
        if self.graph.io_names is not None:
            self.graph.io_names.check_layers(layers, f.path("graph.io_names"))
        fused = self.fused_graph
        if fused is not None and fused.io_names is not None:
            fused.io_names.check_layers(layers, f.path("onnxruntime.fused_graph.io_names"))
        cuda = self.cuda_graph
        if cuda is not None and cuda.io_names is not None:
            cuda.io_names.check_layers(layers, f.path("onnxruntime.cuda_graph.io_names"))

    @property
    def fused_graph(self) -> FusedGraph | None:
        """The onnxruntime graph, when the bundle has one."""
        return None if self.onnxruntime is None else self.onnxruntime.fused_graph

    @property
    def cuda_graph(self) -> CudaGraph | None:
        """The CUDA fused graph (fp16), when the bundle has one."""
        return None if self.onnxruntime is None else self.onnxruntime.cuda_graph

    def to_dict(self) -> dict[str, object]:
        """JSON form, as written to ``manifest.json``."""
        ort, accuracy, engines = self.onnxruntime, self.accuracy, self.engines
        return emit(
            [
                ("created", self.created),
                ("model", self.model.to_dict()),
                ("tokenizer", self.tokenizer.to_dict()),
                ("chat", self.chat),
                ("graph", self.graph.to_dict()),
                ("precision", self.precision.to_dict()),
                ("onnxruntime", None if ort is None else ort.to_dict()),
                ("accuracy", None if accuracy is None else accuracy.to_dict()),
                ("environment", self.environment),
                ("engines", None if engines is None else [e.to_dict() for e in engines]),
                ("format", self.format),
                ("format_version", self.format_version),
                ("files", {n: r.to_dict() for n, r in self.files.items()}),
            ],
            self.present,
            self.extra,
        )
