"""Free time of a group: when a meeting could go, computed from busy intervals alone.

Pure interval arithmetic over frozen values: each participant's busy intervals (already
shaped by the consumer's policy), the window, open hours in one zone and a grid of slot
starts go in; slots or periods come out, and with a count of required participants, who
is free in each. The work is a sort and linear sweeps over the busy intervals and the
open-hours days; it never grows with the minutes of the window, and at most
``max_results`` results are built.

The definitions (docs/slots.md states them for consumers):

- A busy interval [s, e) blocks meetings from s - buffer_after to e + buffer_before, so a
  slot [t, t + duration) has ``buffer_before`` free of busy time before it and
  ``buffer_after`` after it. Buffers may reach outside the window and the open hours.
- An instant is open when its wall-clock time in the zone falls within a rule for that
  weekday. Wall-clock times a DST change skips are never open; those it repeats are open
  both times.
- Grid points are the instants whose wall-clock time in the zone (UTC without open hours)
  is a whole minute and whose minute of the day is a multiple of the interval: counted
  from 00:00 every day.
- ``required`` None ("all"): every participant who is not optional is free. An integer N:
  every participant who is not optional is free, and at least N participants in all
  (optional ones counted) are free.
"""

from __future__ import annotations

from bisect import bisect_right, insort
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from operator import itemgetter
from typing import Literal, NamedTuple

from proxy.core.intervals import Span, merge_spans, subtract_spans
from proxy.core.model import ErrorCode, Query, Window

Format = Literal["slots", "overlapping_slots", "periods"]
FORMATS: tuple[Format, ...] = ("slots", "overlapping_slots", "periods")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

# What one question may ask for, on top of the consumer's limits (policy.Bounds), which can
# only be stricter. The search's work grows with participants times days (their busy
# intervals): at the global limits (100 addresses, 180 days) one search would hold the event
# loop for far longer than tens of milliseconds, at 20 and 62 days it does not.
MAX_PARTICIPANTS = 20
MAX_WINDOW_DAYS = 62
MAX_RESULTS = 1000
DEFAULT_RESULTS = 100
MAX_OPEN_HOURS = 20
MAX_MINUTES = 1440
MAX_BUFFER_MINUTES = 240
DEFAULT_INTERVAL_MINUTES = 15

DAY = timedelta(days=1)
# datetimes count microseconds, so the closed range of starts [a, b - duration] is the
# half-open [a, b - duration + 1 µs): every range in this module is half-open.
_TICK = timedelta(microseconds=1)
_MIDNIGHT = time()
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class OpenHours:
    """Weekly open hours: on these weekdays (0 is Monday), from ``start`` to ``end`` after
    local midnight (0 <= start < end <= 1 day)."""

    days: frozenset[int]
    start: timedelta
    end: timedelta

    def __post_init__(self) -> None:
        if not self.days or not self.days <= frozenset(range(7)):
            raise ValueError("days must be weekday numbers 0 to 6")
        if not timedelta(0) <= self.start < self.end <= DAY:
            raise ValueError("open hours need 00:00 <= start < end <= 24:00")


@dataclass(frozen=True, slots=True)
class Participant:
    """One participant's busy intervals (sorted, disjoint); None: unknown, busy throughout."""

    busy: tuple[Span, ...] | None
    optional: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class SlotSearch:
    """What a slot search looks for, in UTC inside; ``zone`` is the open hours' and grid's."""

    window: Window
    duration: timedelta
    interval: timedelta = timedelta(minutes=DEFAULT_INTERVAL_MINUTES)
    buffer_before: timedelta = timedelta(0)
    buffer_after: timedelta = timedelta(0)
    open_hours: tuple[OpenHours, ...] = ()
    zone: tzinfo = UTC
    # None: every participant who is not optional; N: those, and at least N in all.
    required: int | None = None
    format: Format = "slots"
    max_results: int = DEFAULT_RESULTS

    def __post_init__(self) -> None:
        if self.duration <= timedelta(0) or self.interval <= timedelta(0):
            raise ValueError("duration and interval must be positive")
        if self.buffer_before < timedelta(0) or self.buffer_after < timedelta(0):
            raise ValueError("buffers cannot be negative")
        if self.required is not None and self.required < 1:
            raise ValueError("required must be at least 1")
        if self.max_results < 1:
            raise ValueError("max_results must be at least 1")

    @property
    def reach(self) -> Window:
        """The span whose busy time matters: the window, widened by the buffers."""
        return Window(
            start=self.window.start - self.buffer_before, end=self.window.end + self.buffer_after
        )


class Slot(NamedTuple):
    """A time a meeting could go; with a count of required participants, who is free in it
    (indexes into the participants, in their order). A named tuple: built in C, as many
    as ``max_results`` per answer."""

    start: datetime
    end: datetime
    available: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class FreeTime:
    """The slots (or periods) found, in order of start, and whether more were left out."""

    slots: tuple[Slot, ...]
    truncated: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class SlotQuestion:
    """A consumer's slot question: addresses as spelled, which are optional, and the search."""

    schedules: tuple[str, ...]
    optional: tuple[bool, ...]
    search: SlotSearch
    # The same question as a Query: what is admitted (allowlist, limits) and fetched.
    query: Query = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.optional) != len(self.schedules):
            raise ValueError("one optional flag per participant")
        query = Query(schedules=self.schedules, window=self.search.window)
        object.__setattr__(self, "query", query)


@dataclass(frozen=True, slots=True)
class SlotAnswer:
    """What /v1/slots answers: the free time, the participants that could not be read (as
    spelled, with their code), and whether any participant was served past its freshness."""

    free: FreeTime
    errors: tuple[tuple[str, ErrorCode], ...]
    stale: bool


def find_slots(search: SlotSearch, participants: Sequence[Participant]) -> FreeTime:
    """The free time of the participants as ``search`` defines it (see the module docstring).

    Slots lie within the window and the open hours, never meet a blocking participant's busy
    interval widened by the buffers, start on the grid; ``slots`` are disjoint, ``periods``
    maximal. An unknown participant (busy None) is never free.
    """
    segments = _segments(search.zone, search.window)
    open_spans = _open_spans(search.open_hours, segments)
    before, after, duration = search.buffer_before, search.buffer_after, search.duration
    required = frozenset(i for i, p in enumerate(participants) if not p.optional)
    if search.required is None:
        # One union of everyone's blocked time; optional participants cannot change it.
        busy = [participants[i].busy for i in sorted(required)]
        if any(spans is None for spans in busy):
            common: list[Span] = []
        else:
            blocked = merge_spans(
                (start - after, end + before) for spans in busy for start, end in spans or ()
            )
            common = subtract_spans(open_spans, blocked)
        if search.format == "periods":
            periods = [Slot(low, high) for low, high in common if high - low >= duration]
            limit = search.max_results
            return FreeTime(tuple(periods[:limit]), truncated=len(periods) > limit)
        qualifying = [
            (low, high - duration + _TICK) for low, high in common if high - low >= duration
        ]
        return _slots(qualifying, Grid(segments, search.interval), {}, search)
    free = {i: _free(p, open_spans, before, after) for i, p in enumerate(participants)}
    if search.format == "periods":
        return _periods(free, required, search.required, search)
    starts = {
        i: [(low, high - duration + _TICK) for low, high in spans if high - low >= duration]
        for i, spans in free.items()
    }
    grid = Grid(segments, search.interval)
    return _slots(_qualifying(starts, required, search.required), grid, starts, search)


def open_intervals(search: SlotSearch) -> list[Span]:
    """The open time within the window, in UTC: sorted, disjoint; the window without rules."""
    return _open_spans(search.open_hours, _segments(search.zone, search.window))


class Grid:
    """The grid of slot starts: whole wall-clock minutes of the day that are multiples of
    ``step``, counted from 00:00, over segments of constant UTC offset."""

    def __init__(self, segments: Sequence[tuple[datetime, datetime, timedelta]], step: timedelta):
        self._segments = segments
        self._starts = [start for start, _, _ in segments]
        self._step = step
        # A step that divides the day restarts on itself at midnight: one lattice per offset.
        self._regular = DAY % step == timedelta(0)

    @classmethod
    def of(cls, search: SlotSearch) -> Grid:
        """The grid of a search, over its window."""
        return cls(_segments(search.zone, search.window), search.interval)

    def ceil(self, instant: datetime) -> datetime:
        """The first grid point at or after ``instant``; the window's end if none lies before it."""
        segments, step = self._segments, self._step
        index = max(0, bisect_right(self._starts, instant) - 1)
        while index < len(segments):
            start, end, offset = segments[index]
            instant = max(instant, start)
            # Wall-clock readings are kept as aware datetimes: plain arithmetic, no tzinfo.
            if self._regular:
                found = instant + (_EPOCH - instant - offset) % step
            else:
                wall = instant + offset
                midnight = wall - (wall - _EPOCH) % DAY
                mark = min(midnight + -(-(wall - midnight) // step) * step, midnight + DAY)
                found = mark - offset
            if found < end:
                return found
            # The mark is a wall-clock time this segment does not reach (a DST change).
            index += 1
        return max(instant, segments[-1][1])


def _segments(zone: tzinfo, window: Window) -> list[tuple[datetime, datetime, timedelta]]:
    """(start, end, UTC offset) pieces of the window over which the zone's offset is fixed.

    Offsets are probed daily and a change is found by bisection: in tzdata since 1990 no two
    changes are less than a week apart.
    """
    start, end = window.start, window.end
    if zone is UTC:
        return [(start, end, timedelta(0))]
    pieces: list[tuple[datetime, datetime, timedelta]] = []
    offset = _offset(zone, start)
    piece_start = probe = start
    while probe < end:
        ahead = min(probe + DAY, end)
        if _offset(zone, ahead) == offset:
            probe = ahead
            continue
        low, high = probe, ahead
        while high - low > _TICK:
            middle = low + (high - low) / 2
            if _offset(zone, middle) == offset:
                low = middle
            else:
                high = middle
        pieces.append((piece_start, high, offset))
        piece_start = probe = high
        offset = _offset(zone, high)
    pieces.append((piece_start, end, offset))
    return pieces


def _offset(zone: tzinfo, instant: datetime) -> timedelta:
    offset = instant.astimezone(zone).utcoffset()
    return timedelta(0) if offset is None else offset


def _open_spans(
    rules: Sequence[OpenHours], segments: Sequence[tuple[datetime, datetime, timedelta]]
) -> list[Span]:
    """Open time over the segments, each rule applied to every local day a segment reaches."""
    if not rules:
        return [(segments[0][0], segments[-1][1])]
    spans: list[Span] = []
    for start, end, offset in segments:
        wall_start = (start + offset).replace(tzinfo=None)
        wall_end = (end + offset).replace(tzinfo=None)
        day: date = wall_start.date()
        midnight = datetime.combine(day, _MIDNIGHT)
        while midnight < wall_end:
            weekday = day.weekday()
            for rule in rules:
                if weekday in rule.days:
                    low = max(midnight + rule.start, wall_start)
                    high = min(midnight + rule.end, wall_end)
                    if low < high:
                        spans.append((_utc(low - offset), _utc(high - offset)))
            day += DAY
            midnight += DAY
    return merge_spans(spans)


def _utc(wall: datetime) -> datetime:
    """A naive UTC reading as an aware instant."""
    return wall.replace(tzinfo=UTC)


def _free(
    participant: Participant, open_spans: list[Span], before: timedelta, after: timedelta
) -> list[Span]:
    """The open time this participant is free for a meeting, buffers included."""
    if participant.busy is None:
        return []
    blocked = merge_spans((start - after, end + before) for start, end in participant.busy)
    return subtract_spans(open_spans, blocked)


def _qualifying(
    starts: dict[int, list[Span]], required: frozenset[int], need: int
) -> Iterable[Span]:
    """Where enough participants could start the meeting: every required one, and ``need``."""
    events: list[tuple[datetime, int, bool]] = []
    for member, spans in starts.items():
        counted = member in required
        for low, high in spans:
            events.append((low, 1, counted))
            events.append((high, -1, counted))
    # Stable on time alone: every change at one instant is applied before the state is read.
    events.sort(key=itemgetter(0))
    wanted = sum(1 for member in starts if member in required)
    count = required_count = 0
    opened: datetime | None = None
    index, total = 0, len(events)
    while index < total:
        instant = events[index][0]
        while index < total and events[index][0] == instant:
            _, delta, counted = events[index]
            count += delta
            if counted:
                required_count += delta
            index += 1
        good = count > 0 and count >= need and required_count == wanted
        if good and opened is None:
            opened = instant
        elif not good and opened is not None:
            yield (opened, instant)
            opened = None


def _slots(
    qualifying: Iterable[Span], grid: Grid, starts: dict[int, list[Span]], search: SlotSearch
) -> FreeTime:
    """Slots on the grid within the qualifying starts: every grid point, or back to back."""
    overlapping = search.format == "overlapping_slots"
    duration, limit = search.duration, search.max_results
    lows = {member: [low for low, _ in spans] for member, spans in starts.items()}
    counted = search.required is not None
    found: list[Slot] = []
    floor: datetime | None = None
    for low, high in qualifying:
        instant = grid.ceil(low if floor is None or floor < low else floor)
        while instant < high:
            if len(found) == limit:
                return FreeTime(tuple(found), truncated=True)
            available = _available(starts, lows, instant) if counted else ()
            found.append(Slot(instant, instant + duration, available))
            if overlapping:
                instant = grid.ceil(instant + _TICK)
            else:
                floor = instant + duration
                instant = grid.ceil(floor)
    return FreeTime(tuple(found), truncated=False)


def _available(
    starts: dict[int, list[Span]], lows: dict[int, list[datetime]], instant: datetime
) -> tuple[int, ...]:
    """The participants who could start the meeting at ``instant``, in their order."""
    free = []
    for member, spans in starts.items():
        index = bisect_right(lows[member], instant) - 1
        if index >= 0 and instant < spans[index][1]:
            free.append(member)
    return tuple(free)


def _periods(
    free: dict[int, list[Span]], required: frozenset[int], need: int, search: SlotSearch
) -> FreeTime:
    """Maximal periods in which every required participant and ``need`` in all are free
    throughout, at least the duration long.

    A maximal period starts where some participant's free time starts, and from there runs
    as far as the best group free at that instant allows; it is maximal unless an earlier
    one reached as far. With a count, periods of different groups may overlap.
    """
    events: list[tuple[datetime, int, int, datetime]] = []
    for member, spans in free.items():
        for low, high in spans:
            events.append((low, 1, member, high))
            events.append((high, 0, member, high))
    # Stable on time alone: every change at one instant is applied before the state is read.
    events.sort(key=itemgetter(0))
    wanted = sum(1 for member in free if member in required)
    extra = need - wanted
    until: dict[int, datetime] = {}
    required_ends: list[datetime] = []
    other_ends: list[datetime] = []
    reach: datetime | None = None
    counted = search.required is not None
    found: list[Slot] = []
    index, total = 0, len(events)
    while index < total:
        instant = events[index][0]
        started = False
        while index < total and events[index][0] == instant:
            _, kind, member, high = events[index]
            ends = required_ends if member in required else other_ends
            if kind == 0:
                del ends[bisect_right(ends, high) - 1]
                del until[member]
            else:
                insort(ends, high)
                until[member] = high
                started = True
            index += 1
        if not started or len(required_ends) < wanted or len(other_ends) < extra:
            continue
        ends_at = [required_ends[0]] if required_ends else []
        if extra > 0:
            ends_at.append(other_ends[-extra])
        if not ends_at:
            continue
        end = min(ends_at)
        if reach is not None and end <= reach:
            continue
        reach = end
        if end - instant < search.duration:
            continue
        if len(found) == search.max_results:
            return FreeTime(tuple(found), truncated=True)
        available = tuple(sorted(m for m, high in until.items() if high >= end)) if counted else ()
        found.append(Slot(instant, end, available))
    return FreeTime(tuple(found), truncated=False)
