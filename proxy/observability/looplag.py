"""Event-loop lag: how late the loop runs a timer, which is how long any request may wait.

A timer due every INTERVAL_S is run late by whatever holds the loop (a long slice of work,
a garbage collection); each lateness is observed in ``freebusy_event_loop_lag_seconds`` and
the worst since start is ``freebusy_event_loop_lag_max_seconds``. Costs one timer callback
per interval.
"""

from __future__ import annotations

import asyncio

from prometheus_client import Gauge, Histogram

INTERVAL_S = 0.01


class LoopLag:
    """Observes the lateness of a timer rescheduled every ``interval_s`` on the running loop."""

    def __init__(self, lag: Histogram, worst: Gauge, *, interval_s: float = INTERVAL_S) -> None:
        self._lag = lag
        self._worst = worst
        self._interval_s = interval_s
        self._max = 0.0
        self._due = 0.0
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Start observing the running loop."""
        self._loop = asyncio.get_running_loop()
        self._due = self._loop.time() + self._interval_s
        self._handle = self._loop.call_at(self._due, self._tick)

    def restart(self) -> None:
        """Forget the worst lag so far and observe afresh from now (start-up's own work, done
        once, is not what a request waits for)."""
        self.stop()
        self._max = 0.0
        self._worst.set(0.0)
        self.start()

    def stop(self) -> None:
        """Stop observing."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _tick(self) -> None:
        assert self._loop is not None
        now = self._loop.time()
        late = max(0.0, now - self._due)
        self._lag.observe(late)
        if late > self._max:
            self._max = late
            self._worst.set(late)
        self._due = now + self._interval_s
        self._handle = self._loop.call_at(self._due, self._tick)
