"""Energy per request: each engine step's energy, shared among its requests by tokens.

The power sampler (``edge_sdk.power.PowerSampler``, at the sensor's refresh rate, ~10 Hz on a
Jetson) gives readings of the board's total power; between two readings power is taken to
change linearly, before the first and after the latest it is held at their values. Each engine
step (one model call, :class:`~edge_sdk.runtime.engine.StepRecord`) gets the energy of that curve
over its ``[start, end]``, and that energy is split among the requests in the step in
proportion to the tokens it ran for each (``StepRecord.tokens``): a 30-token prefill chunk
takes 30 shares, a decode row one share. Energy between steps (idle time, the scheduler, HTTP)
is charged to no request; it is in the board total (``edge_serve_board_energy_joules_total``).

A step is settled once a reading later than its end has arrived (the curve over it is then
known), or when a request that ran in it finishes (its usage is answered at once, with the
latest reading held).
"""

from __future__ import annotations

import bisect
import itertools
import threading
import time
from collections import deque
from typing import Any, Protocol

from edge_sdk.power.sensors import PowerReading

__all__ = ["EnergyAccountant", "StepLike"]

_MAX_PENDING = 10_000  # steps waiting for a later reading (settled at once beyond this)
_KEEP_S = 2.0  # readings kept before the oldest unsettled step


class StepLike(Protocol):
    """The parts of ``StepRecord`` the accountant reads (perf_counter seconds)."""

    @property
    def start(self) -> float: ...
    @property
    def end(self) -> float: ...
    @property
    def tokens(self) -> dict[int, int]: ...


class EnergyAccountant:
    """Charges the energy of engine steps to requests; thread-safe.

    ``add_reading`` is the sampler's ``on_sample``; ``on_step`` an engine step listener;
    :meth:`take` the joules charged to a finished request. ``sensor`` names the sensor in
    usage.
    """

    def __init__(self, sensor: str) -> None:
        self.sensor = sensor
        self.board_joules = 0.0  # everything sampled, idle included
        self.request_joules = 0.0  # charged to requests
        self.request_tokens = 0  # generated tokens of requests taken with energy
        self._times: list[float] = []  # monotonic seconds
        self._watts: list[float] = []
        self._pending: deque[StepLike] = deque()
        self._charged: dict[int, float] = {}
        self._lock = threading.Lock()
        # StepRecord times are perf_counter, readings monotonic (the same clock on Linux)
        self._offset = time.monotonic() - time.perf_counter()

    # -- inputs -----------------------------------------------------------------------------------
    def add_reading(self, reading: PowerReading) -> None:
        """One sensor reading (in time order)."""
        with self._lock:
            if self._times and reading.time <= self._times[-1]:
                return
            if self._times:
                self.board_joules += (
                    0.5 * (self._watts[-1] + reading.total_w) * (reading.time - self._times[-1])
                )
            self._times.append(reading.time)
            self._watts.append(reading.total_w)
            self._settle(force=False)
            self._trim()

    def on_step(self, step: StepLike) -> None:
        """An engine step (called on the engine thread; cheap)."""
        with self._lock:
            self._pending.append(step)
            self._settle(force=len(self._pending) > _MAX_PENDING)

    # -- outputs ----------------------------------------------------------------------------------
    def take(self, request_id: int, generated_tokens: int = 0) -> float:
        """Joules charged to a finished request (0.0 when it never ran), forgotten after."""
        with self._lock:
            self._settle(force=True)
            joules = self._charged.pop(request_id, 0.0)
            if joules > 0:
                self.request_tokens += generated_tokens
            return joules

    def usage(self, joules: float, completion_tokens: int) -> dict[str, Any]:
        """The ``usage.energy`` object."""
        return {
            "joules": joules,
            "tokens_per_joule": completion_tokens / joules if joules > 0 else None,
            "sensor": self.sensor,
        }

    @property
    def latest_watts(self) -> float | None:
        with self._lock:
            return self._watts[-1] if self._watts else None

    # -- internals --------------------------------------------------------------------------------
    def _settle(self, force: bool) -> None:
        if not self._times:
            if force:  # no reading yet: nothing is known about these steps' power
                self._pending.clear()
            return
        latest = self._times[-1]
        while self._pending and (force or self._pending[0].end + self._offset <= latest):
            step = self._pending.popleft()
            joules = self._energy(step.start + self._offset, step.end + self._offset)
            total = sum(step.tokens.values())
            if total <= 0:
                continue
            self.request_joules += joules
            for rid, count in step.tokens.items():
                self._charged[rid] = self._charged.get(rid, 0.0) + joules * count / total

    def _power(self, t: float) -> float:
        times, watts = self._times, self._watts
        i = bisect.bisect_right(times, t)
        if i == 0:
            return watts[0]
        if i == len(times):
            return watts[-1]
        t0, t1 = times[i - 1], times[i]
        return watts[i - 1] + (watts[i] - watts[i - 1]) * (t - t0) / (t1 - t0)

    def _energy(self, start: float, end: float) -> float:
        """Integral of the power curve over [start, end] (exact: piecewise linear)."""
        if end <= start:
            return 0.0
        lo = bisect.bisect_right(self._times, start)
        hi = bisect.bisect_left(self._times, end)
        points = [start, *self._times[lo:hi], end]
        return sum(
            0.5 * (self._power(a) + self._power(b)) * (b - a) for a, b in itertools.pairwise(points)
        )

    def _trim(self) -> None:
        if len(self._times) < 1024:
            return
        oldest = self._pending[0].start + self._offset if self._pending else self._times[-1]
        cut = min(bisect.bisect_left(self._times, oldest - _KEEP_S), len(self._times) - 2)
        if cut > 0:
            del self._times[:cut], self._watts[:cut]
