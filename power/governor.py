"""A software power cap for budgets no power mode provides (e.g. 12 W between 7 W and 15 W).

The generation loop calls :meth:`PowerGovernor.pace` before each token. The governor reads the
window-average power from a running :class:`PowerSampler` and, while it is above the budget,
stretches the time between tokens (multiplicatively, from the measured token interval); when
power falls below the budget it relaxes again. It reports the speed it cost.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from edge_sdk.errors import PowerError
from edge_sdk.power.sampler import PowerSampler

__all__ = ["GovernorReport", "PowerGovernor"]


@dataclass(frozen=True)
class GovernorReport:
    """How the budget was held and what it cost."""

    budget_w: float
    window_s: float
    window_avg_w: float | None
    tokens: int
    elapsed_s: float
    waited_s: float
    paced_tokens_per_s: float | None
    unpaced_tokens_per_s: float | None  # estimated from the time spent generating
    slowdown: float  # 1 - paced / unpaced: the fraction of speed the cap cost

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class PowerGovernor:
    """Pace tokens so that average power over ``window_s`` stays under ``budget_w``.

    ``margin`` aims a little below the budget (0.95 = 5 % headroom) because power follows the
    token rate with the sensor's delay.
    """

    def __init__(
        self,
        budget_w: float,
        sampler: PowerSampler,
        window_s: float = 2.0,
        margin: float = 0.95,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if budget_w <= 0:
            raise PowerError(f"a power budget must be positive, not {budget_w}")
        self.budget_w, self.sampler = budget_w, sampler
        self.window_s, self.margin = window_s, margin
        self.clock, self.sleep = clock, sleep
        self.min_interval = 0.0
        self._intervals: deque[float] = deque(maxlen=32)
        self._last_release: float | None = None
        self._first: float | None = None
        self._last_update = 0.0
        self._tokens = 0
        self._work_s = 0.0
        self._waited_s = 0.0

    @property
    def control_window_s(self) -> float:
        return max(self.window_s / 4.0, 2.5 * self.sampler.interval)

    def _update(self, now: float) -> None:
        avg = self.sampler.window_average_w(self.control_window_s)
        if avg is None or not self._intervals:
            return
        interval = sum(self._intervals) / len(self._intervals)
        ratio = avg / (self.budget_w * self.margin)
        if ratio > 1.0:
            self.min_interval = max(self.min_interval, interval * ratio)
        elif self.min_interval > 0.0:
            self.min_interval *= max(ratio, 0.8) ** 0.5
            work = self._work_s / max(self._tokens, 1)
            if self.min_interval < work:
                self.min_interval = 0.0
        self._last_update = now

    def pace(self) -> float:
        """Call before producing each token; waits when needed. Returns the seconds waited."""
        now = self.clock()
        if self._last_release is not None:
            self._work_s += now - self._last_release
        else:
            self._first = now
        if now - self._last_update >= self.control_window_s / 2:
            self._update(now)
        waited = 0.0
        if self._last_release is not None and self.min_interval > 0.0:
            due = self._last_release + self.min_interval
            if due > now:
                self.sleep(due - now)
                waited = due - now
                now = self.clock()
        if self._last_release is not None:
            self._intervals.append(now - self._last_release)
        self._waited_s += waited
        self._last_release = now
        self._tokens += 1
        return waited

    def report(self) -> GovernorReport:
        elapsed = (self._last_release or 0.0) - (self._first or 0.0)
        paced = (self._tokens - 1) / elapsed if elapsed > 0 and self._tokens > 1 else None
        unpaced = (self._tokens - 1) / self._work_s if self._work_s > 0 else None
        slowdown = max(0.0, 1.0 - paced / unpaced) if paced and unpaced else 0.0
        return GovernorReport(
            self.budget_w,
            self.window_s,
            self.sampler.window_average_w(self.window_s),
            self._tokens,
            elapsed,
            self._waited_s,
            paced,
            unpaced,
            slowdown,
        )
