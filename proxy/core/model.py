"""Frozen value objects: the only shapes availability data takes inside the proxy."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import NamedTuple


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


@dataclass(frozen=True, slots=True)
class Window:
    """A half-open UTC interval [start, end) with start < end."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.utcoffset() != timedelta(0) or self.end.utcoffset() != timedelta(0):
            raise ValueError("window bounds must be UTC")
        if not self.start < self.end:
            raise ValueError("window end must be after start")

    @property
    def duration(self) -> timedelta:
        """Length of the window."""
        return self.end - self.start


class BusyItem(NamedTuple):
    """One minimized schedule item: a status over a UTC interval, nothing else.

    A named tuple: immutable, ordered by (start, end, status), and built, hashed and compared
    in C, which the cold path does for every item of every fetched day.
    """

    start: datetime
    end: datetime
    status: Status


@dataclass(frozen=True, slots=True)
class ScheduleResult:
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


@dataclass(frozen=True, slots=True)
class Query:
    """A consumer's question: addresses as the consumer spelled them, and a UTC window."""

    schedules: tuple[str, ...]
    window: Window
    # Each address once, case-folded, in the order first asked: what is fetched and checked.
    unique: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "unique", tuple(dict.fromkeys(address.casefold() for address in self.schedules))
        )
