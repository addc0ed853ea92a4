"""The budget governor against a fake sensor whose power rises with the token rate."""

from __future__ import annotations

import threading
import time
from collections import deque

import pytest

from edge_sdk.errors import PowerError
from edge_sdk.power import PowerGovernor, PowerSampler, SyntheticSensor

IDLE_W, JOULES_PER_TOKEN = 2.0, 0.05  # P = 2 W + 0.05 J x tokens/s


class TokenPoweredBoard:
    """Power = idle + energy per token x token rate over the last 0.1 s."""

    def __init__(self) -> None:
        self.tokens: deque[float] = deque()
        self.lock = threading.Lock()

    def token(self) -> None:
        with self.lock:
            self.tokens.append(time.monotonic())

    def power(self, _: float) -> float:
        now = time.monotonic()
        with self.lock:
            while self.tokens and self.tokens[0] < now - 0.1:
                self.tokens.popleft()
            rate = len(self.tokens) / 0.1
        return IDLE_W + JOULES_PER_TOKEN * rate


def test_governor_holds_the_budget() -> None:
    board = TokenPoweredBoard()
    budget = 8.0  # unpaced: 200 tok/s -> 12 W; the budget allows 120 tok/s
    with PowerSampler(SyntheticSensor(board.power), interval=0.01, history=1000) as sampler:
        governor = PowerGovernor(budget, sampler, window_s=0.5)
        end = time.monotonic() + 2.5
        while time.monotonic() < end:
            governor.pace()
            time.sleep(0.005)  # the work of one token
            board.token()
        settled = sampler.window_average_w(1.0)
    report = governor.report()
    assert settled is not None and settled <= budget * 1.05
    assert report.paced_tokens_per_s is not None and report.unpaced_tokens_per_s is not None
    assert report.paced_tokens_per_s < report.unpaced_tokens_per_s
    assert 0.1 < report.slowdown < 0.8 and report.waited_s > 0


def test_governor_costs_nothing_under_budget() -> None:
    board = TokenPoweredBoard()
    with PowerSampler(SyntheticSensor(board.power), interval=0.01) as sampler:
        governor = PowerGovernor(30.0, sampler, window_s=0.4)
        for _ in range(60):
            governor.pace()
            time.sleep(0.005)
            board.token()
    assert governor.report().waited_s == 0.0


def test_budget_must_be_positive() -> None:
    with (
        PowerSampler(SyntheticSensor(lambda t: 1.0)) as sampler,
        pytest.raises(PowerError, match="positive"),
    ):
        PowerGovernor(0, sampler)
