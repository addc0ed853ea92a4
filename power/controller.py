"""The shape shared by power-mode controllers (nvpmodel, jetson_clocks, NVML power limit)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

__all__ = ["ModeChange", "PowerController"]


@dataclass(frozen=True)
class ModeChange:
    """What a controller changed (or, with ``dry_run``, would change)."""

    kind: str
    before: str
    after: str
    changed: bool
    dry_run: bool = False
    commands: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        if not self.changed:
            return f"{self.kind}: already {self.after}, nothing to change"
        verb = "would change" if self.dry_run else "changed"
        how = f" (runs: {'; '.join(self.commands)})" if self.dry_run and self.commands else ""
        return f"{self.kind}: {verb} {self.before} -> {self.after}{how}"


class PowerController(Protocol):
    """Something that puts the machine in a power state and can put the previous one back.

    ``snapshot()`` returns a JSON-serialisable description of the current state (recorded on
    disk before any change); ``restore(snapshot)`` puts that state back (a no-op if unchanged).
    """

    kind: str

    def snapshot(self) -> dict[str, Any]: ...

    def apply(self, target: str, dry_run: bool = False) -> ModeChange: ...

    def restore(self, snapshot: dict[str, Any]) -> ModeChange: ...
