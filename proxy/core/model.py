"""Frozen value objects: the only shapes availability data takes inside the proxy.

The shapes every request builds, compares and holds (items, results, windows) are msgspec
structs: built, hashed and compared in C, and untracked by the garbage collector (they hold
only datetimes, codes and tuples of one another, so they can never be part of a cycle): a
full cache is not a forest of objects for every collection to walk.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum

import msgspec


class Status(StrEnum):
    """Graph's freeBusyStatus vocabulary, canonical spelling."""

    FREE = "free"
    TENTATIVE = "tentative"
    BUSY = "busy"
    OOF = "oof"
    WORKING_ELSEWHERE = "workingElsewhere"
    UNKNOWN = "unknown"


# Lower-cased spelling -> canonical status; Graph's docs show both "busy" and "Busy".
STATUS_BY_FOLDED: dict[str, Status] = {status.value.casefold(): status for status in Status}


class ErrorCode(StrEnum):
    """Stable per-schedule error codes; upstream text is never passed on."""

    NOT_FOUND = "not_found"
    THROTTLED = "throttled"
    UPSTREAM_ERROR = "upstream_error"
    UPSTREAM_TIMEOUT = "upstream_timeout"
    UPSTREAM_UNAVAILABLE = "upstream_unavailable"
    NOT_CONNECTED = "not_connected"
    NEEDS_CONSENT = "needs_consent"


_ZERO = timedelta(0)


class Window(msgspec.Struct, frozen=True, gc=False):
    """A half-open UTC interval [start, end) with start < end."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        start, end = self.start, self.end
        if not (start.tzinfo is UTC or start.utcoffset() == _ZERO) or not (
            end.tzinfo is UTC or end.utcoffset() == _ZERO
        ):
            raise ValueError("window bounds must be UTC")
        if not start < end:
            raise ValueError("window end must be after start")

    @property
    def duration(self) -> timedelta:
        """Length of the window."""
        return self.end - self.start


class BusyItem(msgspec.Struct, frozen=True, order=True, gc=False):
    """One minimized schedule item: a status over a UTC interval, nothing else.

    Immutable, ordered by (start, end, status), hashable; built positionally as
    ``BusyItem(start, end, status)``.
    """

    start: datetime
    end: datetime
    status: Status


class ScheduleResult(msgspec.Struct, frozen=True, gc=False):
    """Minimized availability for one mailbox: items, or an error code, never both."""

    items: tuple[BusyItem, ...] = ()
    error: ErrorCode | None = None
    # True when served from memory past its freshness because Graph was failing.
    stale: bool = False
    # Seconds since Graph gave this answer: 0 from Graph itself, more from a shared cache.
    age_s: float = 0.0

    @classmethod
    def failed(cls, code: ErrorCode) -> ScheduleResult:
        """Return a result carrying only the error code."""
        return cls(items=(), error=code)


class Query(msgspec.Struct, frozen=True, gc=False):
    """A consumer's question: addresses as the consumer spelled them, and a UTC window."""

    schedules: tuple[str, ...]
    window: Window
    # Each address once, case-folded, in the order first asked: what is fetched and checked.
    # Derived from ``schedules`` whatever is passed.
    unique: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unique = tuple(dict.fromkeys(map(str.casefold, self.schedules)))
        msgspec.structs.force_setattr(self, "unique", unique)
