"""The clock ports: monotonic seconds, and the wall clock; injectable so time-dependent
behaviour is testable without waiting."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

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


class WallClock(Protocol):
    """Tells the current date and time (for rules about "now": look-back, look-ahead, audit)."""

    def now(self) -> datetime:
        """Return the current instant, aware, in UTC."""
        ...


class SystemWallClock:
    """The real wall clock."""

    def now(self) -> datetime:
        """Return the system's current instant in UTC."""
        return datetime.now(UTC)


class FixedWallClock:
    """A wall clock that stands still until told to move (tests, replays)."""

    def __init__(self, instant: datetime) -> None:
        if instant.utcoffset() is None:
            raise ValueError("a FixedWallClock needs an aware datetime")
        self._instant = instant.astimezone(UTC)

    def now(self) -> datetime:
        """Return the instant the clock was set to."""
        return self._instant

    def advance(self, delta: timedelta) -> None:
        """Move the clock by ``delta`` (which may be negative)."""
        self._instant += delta
