"""The clock port: monotonic seconds, injectable so time-dependent behaviour is testable."""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], float]
"""Seconds on a monotonic scale; only differences between readings mean anything."""

MONOTONIC: Clock = time.monotonic


class ManualClock:
    """A clock that moves only when told to (for tests and benchmarks)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        """Return the current reading."""
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.now += seconds
