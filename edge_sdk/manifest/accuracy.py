"""The manifest's accuracy record: parity with PyTorch, quantized vs float, the thresholds."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing_extensions import Self

from edge_sdk.manifest._fields import Fields, emit

__all__ = ["Accuracy", "Parity"]


@dataclass(frozen=True)
class Parity:
    """The float graph against PyTorch (``accuracy.parity_vs_pytorch``): worst relative error."""

    prefill: float | None = None
    decode: float | None = None
    decode_steps: int | None = None
    tolerance: float | None = None
    measure: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    present: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    @classmethod
    def from_dict(cls, data: object, where: str = "accuracy.parity_vs_pytorch") -> Self:
        """Parse and check the JSON form."""
        f = Fields(data, where)
        record = cls(
            f.opt_float("prefill"),
            f.opt_float("decode"),
            f.opt_integer("decode_steps"),
            f.opt_float("tolerance"),
            f.opt_text("measure"),
            f.extra(),
        )
        return replace(record, present=f.present())

    def to_dict(self) -> dict[str, object]:
        """JSON form."""
        return emit(
            [
                ("prefill", self.prefill),
                ("decode", self.decode),
                ("decode_steps", self.decode_steps),
                ("tolerance", self.tolerance),
                ("measure", self.measure),
            ],
            self.present,
            self.extra,
        )


@dataclass(frozen=True)
class Accuracy:
    """``accuracy``: parity, the quantized model against the float one (perplexities, top-1
    agreement, KL; None for fp32) and the thresholds it was gated by."""

    parity_vs_pytorch: Parity | None = None
    quantized_vs_float: dict[str, Any] | None = None
    thresholds: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    present: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    @classmethod
    def from_dict(cls, data: object, where: str = "accuracy") -> Self:
        """Parse and check the JSON form."""
        f = Fields(data, where)
        record = cls(
            f.opt_obj("parity_vs_pytorch", Parity.from_dict),
            f.opt_mapping("quantized_vs_float"),
            f.opt_mapping("thresholds"),
            f.extra(),
        )
        return replace(record, present=f.present())

    def to_dict(self) -> dict[str, object]:
        """JSON form."""
        parity = self.parity_vs_pytorch
        return emit(
            [
                ("parity_vs_pytorch", None if parity is None else parity.to_dict()),
                ("quantized_vs_float", self.quantized_vs_float),
                ("thresholds", self.thresholds),
            ],
            self.present,
            self.extra,
        )
