"""Parse nvpmodel's configuration file (``/etc/nvpmodel.conf``), tolerant of real files' spacing.

Core, shared by the power module (setting modes) and the planner (clock caps per mode).

Blocks open with a header in angle brackets (``< POWER_MODEL ID=1 NAME=MODE_15W >``, also
``<PARAM TYPE=CLOCK NAME=EMC >``) followed by ``PARAM ARG VALUE`` lines; ``#`` starts a comment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from edge_sdk.errors import PowerError

__all__ = [
    "NvpConfig",
    "NvpModelMode",
    "load_nvpmodel_conf",
    "parse_nvpmodel_text",
    "watts_in_name",
]

_HEADER = re.compile(r"^<\s*(?P<kind>[A-Za-z_]+)(?P<attrs>[^>]*)>\s*$")
_ATTR = re.compile(r"([A-Za-z_]+)\s*=\s*(\S+)")
_WATTS = re.compile(r"(?<![0-9.])(\d+(?:\.\d+)?)\s*W(?![A-Za-z])", re.IGNORECASE)


def watts_in_name(name: str) -> float | None:
    """The wattage a mode name states (``15W``, ``MODE_15W``, ``7W_AI`` -> 15, 15, 7), or None."""
    match = _WATTS.search(name)
    return float(match.group(1)) if match else None


@dataclass(frozen=True)
class NvpModelMode:
    """A mode entry of the board's nvpmodel.conf (one ``POWER_MODEL`` block): id, name, stated
    watts (None for MAXN) and its settings as written."""

    id: int
    name: str
    params: dict[tuple[str, str], str] = field(default_factory=dict, compare=False)

    @property
    def watts(self) -> float | None:
        return watts_in_name(self.name)

    @property
    def tpc_pg_mask(self) -> str | None:
        """The GPU TPC power-gating mask; changing it needs a reboot."""
        return self.params.get(("TPC_POWER_GATING", "TPC_PG_MASK"))

    def label(self) -> str:
        return f"{self.id}={self.name}"


@dataclass(frozen=True)
class NvpConfig:
    """A parsed configuration: modes in file order and the default mode id."""

    path: str
    modes: tuple[NvpModelMode, ...]
    default_id: int

    def by_id(self, mode_id: int) -> NvpModelMode | None:
        return next((m for m in self.modes if m.id == mode_id), None)


def parse_nvpmodel_text(text: str, path: str = "<text>") -> NvpConfig:
    """Parse an nvpmodel.conf's text; :class:`PowerError` naming the line when it is malformed."""
    modes: list[NvpModelMode] = []
    default_id: int | None = None
    current: tuple[int, str, dict[tuple[str, str], str]] | None = None
    in_block = False

    def bad(lineno: int, why: str) -> PowerError:
        return PowerError(f"malformed nvpmodel configuration {path}, line {lineno}: {why}")

    def close_mode() -> None:
        nonlocal current
        if current is not None:
            modes.append(NvpModelMode(current[0], current[1], current[2]))
            current = None

    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("<"):
            match = _HEADER.match(line)
            if not match:
                raise bad(lineno, f"header without a closing '>': {raw.strip()!r}")
            close_mode()
            in_block = True
            kind = match.group("kind").upper()
            attrs = {k.upper(): v for k, v in _ATTR.findall(match.group("attrs"))}
            if kind == "POWER_MODEL":
                if "ID" not in attrs or "NAME" not in attrs or not attrs["ID"].isdigit():
                    raise bad(
                        lineno, f"POWER_MODEL needs ID=<number> and NAME=<name>: {raw.strip()!r}"
                    )
                current = (int(attrs["ID"]), attrs["NAME"], {})
            elif kind == "PM_CONFIG":
                value = attrs.get("DEFAULT", "")
                if not value.isdigit():
                    raise bad(lineno, f"PM_CONFIG needs DEFAULT=<mode id>: {raw.strip()!r}")
                default_id = int(value)
            continue
        if not in_block:
            raise bad(lineno, f"setting outside any <...> block: {raw.strip()!r}")
        if current is not None:
            parts = line.split()
            if len(parts) < 3:
                raise bad(lineno, f"expected 'PARAM ARG VALUE', got {raw.strip()!r}")
            current[2][(parts[0], parts[1])] = " ".join(parts[2:])
    close_mode()
    if not modes:
        raise PowerError(f"malformed nvpmodel configuration {path}: no < POWER_MODEL ... > blocks")
    ids = [m.id for m in modes]
    if len(set(ids)) != len(ids):
        raise PowerError(f"malformed nvpmodel configuration {path}: duplicate mode ids {ids}")
    if default_id is None:
        raise PowerError(
            f"malformed nvpmodel configuration {path}: no < PM_CONFIG DEFAULT=n > (it is mandatory)"
        )
    if default_id not in ids:
        raise PowerError(
            f"malformed nvpmodel configuration {path}: default mode {default_id} "
            f"is not one of the modes {ids}"
        )
    return NvpConfig(path, tuple(modes), default_id)


def load_nvpmodel_conf(path: Path) -> NvpConfig:
    """Read and parse a configuration file."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        raise PowerError(
            f"cannot read nvpmodel configuration {path}: {exc.strerror or exc}"
        ) from exc
    return parse_nvpmodel_text(text, str(path))
