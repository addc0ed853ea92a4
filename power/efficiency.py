"""Tie token events to power samples: tokens/s, watts, joules and tokens/s per watt.

Token times come from any source (the runtime's event stream, a callback, a list), so this
module never imports the runtime::

    log = EfficiencyLog("run.jsonl")
    with PowerSampler(sensor, on_sample=log.add_sample):
        log.start()
        for event in model.stream(prompt):
            log.token()          # or log.token(event.time) on the same monotonic clock
        log.stop()
    print(log.summary().to_dict())

Phases: ``prefill`` runs from :meth:`start` to the first token and counts the *prompt* tokens it
processed (``start(prompt_tokens=...)``; None when not given), so its tokens/s is the prompt
rate; ``decode`` runs from the first token to the last (n - 1 generated tokens), ``run`` from
start to stop (all n generated tokens). Each phase says what it counts (``token_kind``: ``prompt``
or ``generated``). Tokens/s per watt equals tokens per joule; mJ/token is its inverse x 1000.

The JSONL file gets one line per sample and per token, flushed as written, so a crash loses at
most the last line. Records are only ever added to: the summary record carries
``summary_version`` (:data:`SUMMARY_VERSION`); version 1 summaries (no such field) counted the
first generated token as the prefill phase's one token.
"""

from __future__ import annotations

import bisect
import csv
import json
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from edge_sdk.errors import PowerError
from edge_sdk.power.sensors import PowerReading

__all__ = ["SUMMARY_VERSION", "EfficiencyLog", "EfficiencySummary", "PhaseFigures"]

#: Version of the summary's fields (2: the prefill phase counts prompt tokens).
SUMMARY_VERSION = 2

_MAX_POINTS = 200_000  # power timeline points kept (about 5.5 h at 10 Hz) before halving


@dataclass(frozen=True)
class PhaseFigures:
    """Figures over one interval: ``tokens`` of ``token_kind`` (``prompt`` or ``generated``) in
    ``duration_s``. Power figures are None when no power was sampled; rates are None when the
    token count is unknown (a prefill without ``prompt_tokens``)."""

    name: str
    start: float
    end: float
    tokens: int | None
    token_kind: str
    duration_s: float
    tokens_per_s: float | None
    energy_j: float | None
    avg_w: float | None
    peak_w: float | None
    tokens_per_joule: float | None  # = tokens/s per watt
    mj_per_token: float | None

    @property
    def tokens_per_s_per_w(self) -> float | None:
        return self.tokens_per_joule


@dataclass(frozen=True)
class EfficiencySummary:
    """The run and its phases, plus any context (sensor, mode, sampler statistics)."""

    run: PhaseFigures
    phases: list[PhaseFigures]
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        def one(p: PhaseFigures) -> dict[str, Any]:
            return {**asdict(p), "tokens_per_s_per_w": p.tokens_per_joule}

        return {
            "summary_version": SUMMARY_VERSION,
            "run": one(self.run),
            "phases": {p.name: one(p) for p in self.phases},
            **self.info,
        }


class EfficiencyLog:
    """Collects power samples and token events; writes JSONL as it goes; summarises."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else None
        self._fh: IO[str] | None = None
        if self.path is not None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                # a long-lived handle: one line per record, closed in close()
                self._fh = open(self.path, "w", encoding="utf-8")  # noqa: SIM115
            except OSError as exc:
                raise PowerError(f"cannot write the efficiency log {self.path}: {exc}") from exc
        self._lock = threading.Lock()
        # power timeline: time, cumulative energy at that time, power, peak power since previous
        self._t: list[float] = []
        self._e: list[float] = []
        self._p: list[float] = []
        self._peak: list[float] = []
        self._tokens: list[float] = []
        self.started: float | None = None
        self.stopped: float | None = None
        self.prompt_tokens: int | None = None

    # -- input -----------------------------------------------------------------------------------
    def _write(self, record: dict[str, Any]) -> None:
        if self._fh is not None:
            self._fh.write(json.dumps(record) + "\n")
            self._fh.flush()

    def add_sample(self, reading: PowerReading) -> None:
        """One power reading (use as the sampler's ``on_sample``); thread-safe."""
        with self._lock:
            t, w = reading.time, reading.total_w
            if self._t and t <= self._t[-1]:
                return
            if self._t:
                energy = self._e[-1] + 0.5 * (self._p[-1] + w) * (t - self._t[-1])
                peak = max(self._p[-1], w)
            else:
                energy, peak = 0.0, w
            self._t.append(t)
            self._e.append(energy)
            self._p.append(w)
            self._peak.append(peak)
            if len(self._t) > _MAX_POINTS:
                self._halve()
            self._write(
                {
                    "type": "sample",
                    "t": t,
                    "total_w": w,
                    "rails": {k: r.power_w for k, r in reading.rails.items()},
                }
            )

    def _halve(self) -> None:
        """Keep every other point: energies stay exact at kept points, peaks are merged."""
        peaks = [
            max(self._peak[i], self._peak[i - 1]) if i else self._peak[0]
            for i in range(0, len(self._t), 2)
        ]
        self._t, self._e, self._p = self._t[::2], self._e[::2], self._p[::2]
        self._peak = peaks

    def start(self, t: float | None = None, prompt_tokens: int | None = None) -> None:
        """Mark the start of generation (prefill of ``prompt_tokens`` begins)."""
        with self._lock:
            self.started = time.monotonic() if t is None else t
            self.prompt_tokens = prompt_tokens
            self._write({"type": "start", "t": self.started, "prompt_tokens": prompt_tokens})

    def token(
        self, t: float | None = None, text: str | None = None, token_id: int | None = None
    ) -> None:
        """One generated token at monotonic time ``t`` (now if omitted)."""
        with self._lock:
            t = time.monotonic() if t is None else t
            if self.started is None:
                self.started = t
            self._tokens.append(t)
            record: dict[str, Any] = {"type": "token", "t": t, "index": len(self._tokens) - 1}
            if token_id is not None:
                record["token_id"] = token_id
            if text is not None:
                record["text"] = text
            self._write(record)

    def tokens(self, times: list[float]) -> None:
        """Many token times at once."""
        for t in times:
            self.token(t)

    def stop(self, t: float | None = None) -> None:
        """Mark the end of generation."""
        with self._lock:
            self.stopped = time.monotonic() if t is None else t
            self._write({"type": "stop", "t": self.stopped})

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    # -- figures ---------------------------------------------------------------------------------
    def energy_between(self, a: float, b: float) -> float | None:
        """Joules from ``a`` to ``b`` (power held constant beyond the sampled range)."""
        with self._lock:
            if not self._t:
                return None
            return self._energy_at(b) - self._energy_at(a)

    def _energy_at(self, t: float) -> float:
        ts, es, ps = self._t, self._e, self._p
        if t <= ts[0]:
            return -(ts[0] - t) * ps[0]
        if t >= ts[-1]:
            return es[-1] + (t - ts[-1]) * ps[-1]
        i = bisect.bisect_right(ts, t) - 1
        dt = ts[i + 1] - ts[i]
        frac = (t - ts[i]) / dt
        p_t = ps[i] + (ps[i + 1] - ps[i]) * frac
        trapezoid_full = 0.5 * (ps[i] + ps[i + 1]) * dt
        trapezoid_part = 0.5 * (ps[i] + p_t) * (t - ts[i])
        segment = es[i + 1] - es[i]
        scale = segment / trapezoid_full if trapezoid_full else 0.0
        return es[i] + trapezoid_part * scale

    def _power_at(self, t: float) -> float:
        ts, ps = self._t, self._p
        if t <= ts[0]:
            return ps[0]
        if t >= ts[-1]:
            return ps[-1]
        i = bisect.bisect_right(ts, t) - 1
        return ps[i] + (ps[i + 1] - ps[i]) * (t - ts[i]) / (ts[i + 1] - ts[i])

    def _peak_between(self, a: float, b: float) -> float | None:
        ts = self._t
        if not ts:
            return None
        lo = bisect.bisect_left(ts, a)  # first sample at or after a
        hi = bisect.bisect_right(ts, b)  # first sample after b
        values = [self._power_at(a), self._power_at(b)]
        values += [self._p[i] for i in range(lo, hi)]
        values += [self._peak[i] for i in range(lo + 1, hi)]  # segments inside [a, b]
        return max(values)

    def _phase(
        self, name: str, a: float, b: float, tokens: int | None, token_kind: str = "generated"
    ) -> PhaseFigures:
        duration = max(b - a, 0.0)
        energy = self.energy_between(a, b) if self._t else None
        with self._lock:
            peak = self._peak_between(a, b)
        avg = energy / duration if energy is not None and duration > 0 else None
        per_j = tokens / energy if energy and tokens else None
        return PhaseFigures(
            name=name,
            start=a,
            end=b,
            tokens=tokens,
            token_kind=token_kind,
            duration_s=duration,
            tokens_per_s=tokens / duration if duration > 0 and tokens is not None else None,
            energy_j=energy,
            avg_w=avg,
            peak_w=peak,
            tokens_per_joule=per_j,
            mj_per_token=1000.0 * energy / tokens if energy is not None and tokens else None,
        )

    def summary(self, info: dict[str, Any] | None = None) -> EfficiencySummary:
        """Figures over the run and per phase (prefill: prompt tokens, decode)."""
        with self._lock:
            tokens = list(self._tokens)
            start = self.started
            stop = self.stopped
        if start is None:
            raise PowerError("the efficiency log has no start and no tokens: nothing to summarise")
        end = stop if stop is not None else (tokens[-1] if tokens else start)
        run = self._phase("run", start, end, len(tokens))
        phases = []
        if tokens:
            phases.append(self._phase("prefill", start, tokens[0], self.prompt_tokens, "prompt"))
            if len(tokens) > 1:
                phases.append(self._phase("decode", tokens[0], tokens[-1], len(tokens) - 1))
        extra = dict(info or {})
        if self.prompt_tokens is not None:
            extra.setdefault("prompt_tokens", self.prompt_tokens)
        extra.setdefault("power_samples", len(self._t))
        return EfficiencySummary(run, phases, extra)

    def timeline(self) -> tuple[list[float], list[float], list[float]]:
        """``(sample times, watts, token times)`` for plotting."""
        with self._lock:
            return list(self._t), list(self._p), list(self._tokens)

    def write_summary(
        self,
        json_path: str | Path | None = None,
        csv_path: str | Path | None = None,
        info: dict[str, Any] | None = None,
    ) -> EfficiencySummary:
        """Write the summary as JSON and/or CSV (one row per phase); also logged to the JSONL."""
        summary = self.summary(info)
        data = summary.to_dict()
        with self._lock:
            self._write({"type": "summary", **data})
        try:
            if json_path:
                Path(json_path).write_text(json.dumps(data, indent=2, default=str) + "\n")
            if csv_path:
                rows = [summary.run, *summary.phases]
                with open(csv_path, "w", newline="") as fh:
                    writer = csv.DictWriter(fh, fieldnames=list(asdict(rows[0])))
                    writer.writeheader()
                    writer.writerows(asdict(r) for r in rows)
        except OSError as exc:
            raise PowerError(f"cannot write the efficiency summary: {exc}") from exc
        return summary
