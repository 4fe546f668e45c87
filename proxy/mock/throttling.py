"""Outlook's per-mailbox limits (concurrency, ten-minute budget) and the counters tests read."""

from __future__ import annotations

import time
from collections import Counter, deque
from typing import Any, Literal

RATE_WINDOW_S = 600.0
RECENT_LIMIT = 200
Verdict = Literal["ok", "concurrency", "rate"]


class Stats:
    """What the mock has seen: calls per endpoint, limit breaches, the latest getSchedule calls."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        """Set every counter back to zero and forget the recent requests."""
        self.calls: Counter[str] = Counter()
        self.schedules_requested = 0
        self.max_concurrent_per_mailbox = 0
        self.breaches: Counter[str] = Counter()
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT_LIMIT)

    def to_json(self) -> dict[str, Any]:
        """Return the counters in the shape of GET /_mock/stats."""
        return {
            "calls": {
                name: self.calls[name]
                for name in (
                    "token",
                    "openid-configuration",
                    "getSchedule",
                    "authorize",
                    "devicecode",
                    "organization",
                )
            },
            "schedules_requested": self.schedules_requested,
            "max_concurrent_per_mailbox": self.max_concurrent_per_mailbox,
            "breaches": {
                name: self.breaches[name]
                for name in ("too_many_schedules", "window_too_long", "concurrency", "rate")
            },
            "recent": [dict(entry) for entry in self.recent],
        }


class MailboxGate:
    """Admits getSchedule requests per URL mailbox the way Outlook throttles them."""

    def __init__(self, *, concurrency: int, per_ten_minutes: int, stats: Stats) -> None:
        self._concurrency = concurrency
        self._budget = per_ten_minutes
        self._stats = stats
        self._in_flight: Counter[str] = Counter()
        self._history: dict[str, deque[float]] = {}

    def enter(self, mailbox: str) -> Verdict:
        """Admit one request for ``mailbox`` or say which limit it breaks; "ok" must be left."""
        key = mailbox.lower()
        # Rejected attempts count too: the point is to see how hard a client pushes.
        attempted = self._in_flight[key] + 1
        self._stats.max_concurrent_per_mailbox = max(
            self._stats.max_concurrent_per_mailbox, attempted
        )
        if attempted > self._concurrency:
            self._stats.breaches["concurrency"] += 1
            return "concurrency"
        now = time.monotonic()
        history = self._history.setdefault(key, deque())
        while history and history[0] <= now - RATE_WINDOW_S:
            history.popleft()
        if len(history) >= self._budget:
            self._stats.breaches["rate"] += 1
            return "rate"
        history.append(now)
        self._in_flight[key] = attempted
        return "ok"

    def leave(self, mailbox: str) -> None:
        """Mark one admitted request for ``mailbox`` as finished."""
        key = mailbox.lower()
        self._in_flight[key] -= 1
        if self._in_flight[key] <= 0:
            del self._in_flight[key]

    def in_flight(self, mailbox: str) -> int:
        """Admitted requests for ``mailbox`` not yet answered."""
        return self._in_flight.get(mailbox.lower(), 0)

    def forget_history(self) -> None:
        """Restart every ten-minute budget (requests in flight stay counted)."""
        self._history.clear()
