"""The manifest's precision record: the precision name, the quantization config and its details."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing_extensions import Self

from edge_sdk.manifest._fields import Fields, emit

__all__ = ["Quantization"]


@dataclass(frozen=True)
class Quantization:
    """``precision``: its ``name`` (``"int8"``, ``"fp32"``, ...), the config it was made with
    (``method``, ``bits``, ``group_size``, ...), weight/activation types, calibration source and
    size; every other detail the exporter recorded stays in ``extra``."""

    name: str
    config: dict[str, Any] | None = None
    weights: str | None = None
    activations: str | None = None
    scheme: str | None = None
    granularity: str | None = None
    calibration: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    present: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    @classmethod
    def from_dict(cls, data: object, where: str = "precision") -> Self:
        """Parse and check the JSON form."""
        f = Fields(data, where)
        record = cls(
            f.text("name"),
            f.opt_mapping("config"),
            f.opt_text("weights"),
            f.opt_text("activations"),
            f.opt_text("scheme"),
            f.opt_text("granularity"),
            f.opt_mapping("calibration"),
            f.extra(),
        )
        return replace(record, present=f.present())

    @property
    def method(self) -> str:
        """The quantization method (``config.method``), else the precision name."""
        method = (self.config or {}).get("method")
        return method if isinstance(method, str) else self.name

    def to_dict(self) -> dict[str, object]:
        """JSON form (the keys it was read with, plus any it did not know)."""
        return emit(
            [
                ("name", self.name),
                ("config", self.config),
                ("weights", self.weights),
                ("activations", self.activations),
                ("scheme", self.scheme),
                ("granularity", self.granularity),
                ("calibration", self.calibration),
            ],
            self.present,
            self.extra,
        )
