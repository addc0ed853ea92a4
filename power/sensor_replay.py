"""Sensors that need no hardware: a recorded power log played back, or an analytic curve.

A log is a CSV (columns ``t``, ``total_w`` and optional ``<RAIL>_w``) or a JSONL file whose lines
carry ``t`` and ``total_w`` (the sample records that ``edge-power monitor --log`` and
:class:`~edge_sdk.power.efficiency.EfficiencyLog` write). Playback is in real time from
:meth:`open` (``speed`` scales it), linearly interpolated, optionally looped.

The package ships one trace, :func:`sample_trace_path` (``--sensor replay:sample``): synthetic, in
the recorded format, shaped like an Orin Nano 8GB in 15W (2 s idle, 8 s generating at about
9.5 W on ``VDD_IN``, 2 s idle), so the replay examples run on any machine.
"""

from __future__ import annotations

import bisect
import csv
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from edge_sdk.errors import PowerError
from edge_sdk.power.sensors import PowerReading, PowerSensor, RailReading, total_of

__all__ = [
    "SAMPLE_TRACE",
    "ReplaySensor",
    "SyntheticSensor",
    "TracePoint",
    "load_trace",
    "sample_trace_path",
]

#: The ``replay:`` argument that names the packaged sample trace (``replay:./sample`` is a file).
SAMPLE_TRACE = "sample"

TracePoint = tuple[float, float, dict[str, float]]  # (t seconds, total W, {rail: W})


def _rails_from_json(raw: Any) -> dict[str, float]:
    if not isinstance(raw, dict):
        return {}
    return {str(k): float(v["power_w"] if isinstance(v, dict) else v) for k, v in raw.items()}


def sample_trace_path() -> Path:
    """The packaged sample power trace (JSONL sample records, 12 s at 10 Hz)."""
    return Path(__file__).parent / "data" / "sample_power_trace.jsonl"


def load_trace(path: str | Path) -> list[TracePoint]:
    """Read a CSV or JSONL power log into time-sorted points (time relative to the first)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise PowerError(f"cannot read power log {path}: {exc}") from exc
    points: list[TracePoint] = []
    try:
        if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
            for line in text.splitlines():
                if not line.strip():
                    continue
                rec = json.loads(line)
                if "t" in rec and "total_w" in rec and rec.get("type", "sample") == "sample":
                    points.append(
                        (float(rec["t"]), float(rec["total_w"]), _rails_from_json(rec.get("rails")))
                    )
        else:
            for row in csv.DictReader(text.splitlines()):
                rails = {
                    k[:-2]: float(v)
                    for k, v in row.items()
                    if k and k.endswith("_w") and k != "total_w" and v not in ("", None)
                }
                points.append((float(row["t"]), float(row["total_w"]), rails))
    except (ValueError, KeyError, TypeError) as exc:
        raise PowerError(
            f"malformed power log {path}: {exc!r} (expected columns t, total_w)"
        ) from exc
    if len(points) < 2:
        raise PowerError(f"power log {path} has fewer than two samples")
    points.sort(key=lambda p: p[0])
    t0 = points[0][0]
    return [(t - t0, w, r) for t, w, r in points]


class ReplaySensor(PowerSensor):
    """Plays a recorded trace back in real time."""

    kind = "replay"

    def __init__(
        self,
        points: Sequence[TracePoint],
        loop: bool = True,
        speed: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        name: str = "trace",
    ) -> None:
        super().__init__(clock)
        if len(points) < 2:
            raise PowerError("a replayed trace needs at least two samples")
        self.points = list(points)
        self._times = [p[0] for p in self.points]
        self.loop, self.speed, self.name = loop, speed, name
        self._start = 0.0

    @classmethod
    def from_file(cls, path: str | Path, loop: bool = True, speed: float = 1.0) -> ReplaySensor:
        """A sensor replaying the CSV/JSONL log at ``path`` (``"sample"``: the packaged trace)."""
        if str(path) == SAMPLE_TRACE:
            return cls(
                load_trace(sample_trace_path()), loop=loop, speed=speed, name="the sample trace"
            )
        return cls(load_trace(path), loop=loop, speed=speed, name=str(path))

    def open(self) -> ReplaySensor:
        if not self._opened:
            self._start = self.clock()
            self._opened = True
        return self

    def describe(self) -> str:
        return f"replay of {self.name} ({len(self.points)} samples)"

    def _read(self) -> PowerReading:
        now = self.clock()
        t = (now - self._start) * self.speed
        duration = self._times[-1]
        if self.loop and duration > 0:
            t %= duration
        t = min(max(t, 0.0), duration)
        i = min(max(bisect.bisect_right(self._times, t), 1), len(self.points) - 1)
        (t0, w0, r0), (t1, w1, r1) = self.points[i - 1], self.points[i]
        frac = 0.0 if t1 == t0 else (t - t0) / (t1 - t0)
        total = w0 + (w1 - w0) * frac
        rails = {k: RailReading(k, r0[k] + (r1.get(k, r0[k]) - r0[k]) * frac) for k in r0}
        return PowerReading(now, total, "replay", rails)


class SyntheticSensor(PowerSensor):
    """Power from a function of the time since :meth:`open`: ``fn(t) -> W`` or ``{rail: W}``.

    With a dict, the total follows the board rule (``VDD_IN`` if present, else the sum).
    """

    kind = "synthetic"

    def __init__(
        self,
        fn: Callable[[float], float | dict[str, float]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(clock)
        self.fn = fn
        self.start_time = 0.0

    def open(self) -> SyntheticSensor:
        if not self._opened:
            self.start_time = self.clock()
            self._opened = True
        return self

    def _read(self) -> PowerReading:
        now = self.clock()
        value = self.fn(now - self.start_time)
        if isinstance(value, dict):
            rails = {k: RailReading(k, float(v)) for k, v in value.items()}
            total, source = total_of(rails)
            return PowerReading(now, total, source, rails)
        return PowerReading(now, float(value), "synthetic", {})
