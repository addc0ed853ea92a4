"""The manifest's engine records (``engines``): one TensorRT engine each, what it was built for."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing_extensions import Self

from edge_sdk.manifest._fields import Fields, emit

__all__ = ["EngineRecord"]


@dataclass(frozen=True)
class EngineRecord:
    """One ``edge-engine`` build: file, TensorRT version, GPU and compute capability, precision
    flags, context, optimization profiles, workspace and builder settings."""

    file: str
    tensorrt: str
    gpu: str | None = None
    compute_capability: str | None = None
    module: str | None = None
    precision: dict[str, Any] | None = None
    max_sequence_length: int | None = None
    profiles: tuple[dict[str, Any], ...] | None = None
    workspace_mb: int | None = None
    builder_optimization_level: int | None = None
    dla_core: int | None = None
    build_seconds: float | None = None
    timing_cache_reused: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    present: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    @classmethod
    def from_dict(cls, data: object, where: str = "engines[0]") -> Self:
        """Parse and check the JSON form."""
        f = Fields(data, where)
        record = cls(
            f.text("file"),
            f.text("tensorrt"),
            f.opt_text("gpu"),
            f.opt_text("compute_capability"),
            f.opt_text("module"),
            f.opt_mapping("precision"),
            f.opt_integer("max_sequence_length"),
            f.objects("profiles", Fields.object_of),
            f.opt_integer("workspace_mb"),
            f.opt_integer("builder_optimization_level"),
            f.opt_integer("dla_core"),
            f.opt_float("build_seconds"),
            f.opt_bool("timing_cache_reused"),
            f.extra(),
        )
        return replace(record, present=f.present())

    def to_dict(self) -> dict[str, object]:
        """JSON form (the keys it was read with, plus any it did not know)."""
        return emit(
            [
                ("file", self.file),
                ("tensorrt", self.tensorrt),
                ("gpu", self.gpu),
                ("compute_capability", self.compute_capability),
                ("module", self.module),
                ("precision", self.precision),
                ("max_sequence_length", self.max_sequence_length),
                ("profiles", None if self.profiles is None else list(self.profiles)),
                ("workspace_mb", self.workspace_mb),
                ("builder_optimization_level", self.builder_optimization_level),
                ("dla_core", self.dla_core),
                ("build_seconds", self.build_seconds),
                ("timing_cache_reused", self.timing_cache_reused),
            ],
            self.present,
            self.extra,
        )
