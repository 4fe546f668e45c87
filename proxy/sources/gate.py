"""The gate every Graph call holds: per-mailbox slots and budget, and a global limit.

Graph (Outlook) allows each app 4 concurrent requests and 10,000 requests per 10 minutes per
mailbox. The gate here is what GraphScheduleSource holds around every HTTP attempt, retries
included, so the proxy stays inside those limits instead of discovering them through 429s.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from proxy.core.clock import MONOTONIC, Clock
from proxy.observability.metrics import Metrics

log = logging.getLogger(__name__)

BUDGET_WINDOW_S = 600.0
# The budget is counted in slots of this length; see MailboxBudget.
_SLOT_S = 60.0
_SWEEP_EVERY = 1024


class KeyedLimiter:
    """At most ``limit`` holders per key at once; a key's semaphore lives only while in use."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._slots: dict[str, tuple[asyncio.Semaphore, list[int]]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        """Wait for a slot for ``key`` and hold it for the duration of the block."""
        entry = self._slots.get(key)
        if entry is None:
            entry = self._slots[key] = (asyncio.Semaphore(self._limit), [0])
        semaphore, users = entry
        users[0] += 1
        try:
            async with semaphore:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._slots[key]


class MailboxBudget:
    """At most ``limit`` calls per mailbox in any 10 minutes, counted conservatively.

    Calls are counted per one-minute slot; a call is admitted only if the current slot and
    the ten before it hold fewer than ``limit`` calls. Those eleven slots always cover the
    last ten minutes, so no sliding ten-minute window Graph might use ever sees more.
    """

    def __init__(self, limit: int, *, clock: Clock = MONOTONIC) -> None:
        self._limit = limit
        self._clock = clock
        self._slots: dict[str, deque[list[int]]] = {}
        self._calls = 0

    def take(self, mailbox: str) -> bool:
        """Count one call for ``mailbox`` and return True, or return False if over budget."""
        now_slot = math.floor(self._clock() / _SLOT_S)
        oldest = now_slot - math.ceil(BUDGET_WINDOW_S / _SLOT_S)
        self._calls += 1
        if self._calls % _SWEEP_EVERY == 0:
            self._sweep(oldest)
        slots = self._slots.setdefault(mailbox, deque())
        while slots and slots[0][0] < oldest:
            slots.popleft()
        if sum(count for _, count in slots) >= self._limit:
            return False
        if slots and slots[-1][0] == now_slot:
            slots[-1][1] += 1
        else:
            slots.append([now_slot, 1])
        return True

    def tracked(self) -> int:
        """Mailboxes with calls in the budget window (for tests: idle ones are forgotten)."""
        return len(self._slots)

    def _sweep(self, oldest: int) -> None:
        """Forget mailboxes with no call in the window, so memory follows activity."""
        for mailbox in [
            m for m, slots in self._slots.items() if not slots or slots[-1][0] < oldest
        ]:
            del self._slots[mailbox]


class Throttle:
    """The gate for every Graph call: budget, then a mailbox slot, then a global slot."""

    def __init__(
        self,
        *,
        mailbox_concurrency: int,
        max_concurrency: int,
        mailbox_budget: int,
        clock: Clock,
        metrics: Metrics,
    ) -> None:
        self._mailboxes = KeyedLimiter(mailbox_concurrency)
        self._mailbox_concurrency = mailbox_concurrency
        self._global = asyncio.Semaphore(max_concurrency)
        self._budget = MailboxBudget(mailbox_budget, clock=clock)
        self._metrics = metrics
        self._in_flight: dict[str, int] = {}

    @asynccontextmanager
    async def hold(self, mailbox: str) -> AsyncIterator[bool]:
        """Yield True while a call for ``mailbox`` may be in flight, or False if over budget."""
        if not self._budget.take(mailbox):
            self._metrics.throttle_events.labels("mailbox_budget").inc()
            # No address in the log line: the metric and the schedule's code say enough.
            log.info("a mailbox's call budget is spent; the call is not sent")
            yield False
            return
        if self._in_flight.get(mailbox, 0) >= self._mailbox_concurrency:
            self._metrics.throttle_events.labels("mailbox_wait").inc()
        # Mailbox slot first: a call waiting for its mailbox must not sit on a global slot.
        async with self._mailboxes.hold(mailbox):
            if self._global.locked():
                self._metrics.throttle_events.labels("global_wait").inc()
            async with self._global:
                self._in_flight[mailbox] = self._in_flight.get(mailbox, 0) + 1
                try:
                    yield True
                finally:
                    left = self._in_flight[mailbox] - 1
                    if left:
                        self._in_flight[mailbox] = left
                    else:
                        del self._in_flight[mailbox]

    def hold_off(self, mailbox: str, seconds: float) -> None:
        """Nothing to share in one process: the call that saw the Retry-After waits it out."""
