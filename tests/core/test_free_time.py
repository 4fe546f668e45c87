"""The slot search: properties over random calendars, a minute-by-minute oracle, DST by hand."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.core.free_time import (
    FORMATS,
    FreeTime,
    Grid,
    OpenHours,
    Participant,
    Slot,
    SlotSearch,
    find_slots,
    open_intervals,
)
from proxy.core.model import BusyItem, ScheduleResult, Status, Window
from proxy.core.policy import DEFAULT_BUSY_STATUSES, Policy, blocking_spans

MINUTE = timedelta(minutes=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
BERLIN, NEW_YORK = ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York")
WEEKDAYS = frozenset(range(5))
EVERY_DAY = frozenset(range(7))
# Zones with DST, with half-hour offsets, a half-hour DST shift (Lord Howe), and none.
ZONES = (
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "America/St_Johns",
    "Asia/Kathmandu",
)
# Both 2026/2027 changes of Berlin and New York, and Lord Howe's 2026 ones.
DST_DAYS = (
    date(2026, 3, 8),
    date(2026, 3, 29),
    date(2026, 10, 25),
    date(2026, 11, 1),
    date(2027, 3, 14),
    date(2027, 3, 28),
    date(2027, 10, 31),
    date(2027, 11, 7),
    date(2026, 4, 5),
    date(2026, 10, 4),
)


def utc(*fields: int) -> datetime:
    """An instant in UTC."""
    return datetime(*fields, tzinfo=UTC)


def hours(start: float, end: float) -> OpenHours:
    """Open hours every weekday (Monday to Friday) from ``start`` to ``end`` o'clock."""
    return OpenHours(WEEKDAYS, timedelta(hours=start), timedelta(hours=end))


def spans(found: FreeTime) -> list[tuple[datetime, datetime]]:
    """The (start, end) of every slot found."""
    return [(slot.start, slot.end) for slot in found.slots]


# --- the case a test draws, and its oracle -----------------------------------------------


@dataclass(frozen=True)
class Case:
    """A drawn search: raw items per participant (None: unreadable), and the policy."""

    search: SlotSearch
    items: tuple[tuple[BusyItem, ...] | None, ...]
    optional: tuple[bool, ...]
    policy: Policy

    def participants(self) -> list[Participant]:
        """What the service hands the search: the policy's blocking spans over the reach."""
        return [
            Participant(
                None
                if items is None
                else blocking_spans(ScheduleResult(items=items), self.policy, self.search.reach),
                optional,
            )
            for items, optional in zip(self.items, self.optional, strict=True)
        ]


class Oracle:
    """The definitions, checked minute by minute, independently of the search's arithmetic."""

    def __init__(self, case: Case) -> None:
        search = self.search = case.search
        self.case = case
        self.before = search.buffer_before // MINUTE
        self.after = search.buffer_after // MINUTE
        self.duration = search.duration // MINUTE
        self.length = (search.window.end - search.window.start) // MINUTE
        # Minute k of the window is search.window.start + k minutes; busy arrays start
        # ``before`` minutes earlier and run ``after`` minutes longer.
        low = search.window.start - search.buffer_before
        span = self.before + self.length + self.after
        grain = case.policy.granularity_minutes
        self.busy = [
            [self._is_busy(items, low + k * MINUTE, grain, case.policy) for k in range(span)]
            for items in case.items
        ]
        self.busy_sums = [_sums(row) for row in self.busy]
        self.open = [self._is_open(search.window.start + k * MINUTE) for k in range(self.length)]
        self.open_sums = _sums([not is_open for is_open in self.open])
        self.required = [i for i, optional in enumerate(case.optional) if not optional]
        everyone = range(len(case.items))
        self.members = self.required if search.required is None else list(everyone)

    @staticmethod
    def _is_busy(
        items: tuple[BusyItem, ...] | None, minute: datetime, grain: int, policy: Policy
    ) -> bool:
        if items is None:
            return True
        if grain:
            # The minute is busy when its cell of the policy's grid meets a counted item.
            cell = minute - (minute - EPOCH) % timedelta(minutes=grain)
            low, high = cell, cell + timedelta(minutes=grain)
        else:
            low, high = minute, minute + MINUTE
        return any(
            item.status in policy.busy_statuses and item.start < high and low < item.end
            for item in items
        )

    def _is_open(self, minute: datetime) -> bool:
        search = self.search
        if not search.open_hours:
            return True
        wall = minute.astimezone(search.zone)
        since = timedelta(hours=wall.hour, minutes=wall.minute)
        return any(
            wall.weekday() in rule.days and rule.start <= since < rule.end
            for rule in search.open_hours
        )

    def on_grid(self, instant: datetime) -> bool:
        """Whether the wall-clock minute of ``instant`` is a multiple of the interval."""
        wall = instant.astimezone(self.search.zone)
        step = self.search.interval // MINUTE
        return (
            wall.second == 0
            and wall.microsecond == 0
            and (wall.hour * 60 + wall.minute) % step == 0
        )

    def free(self, member: int, start: int, end: int) -> bool:
        """Whether the member can meet over window minutes [start, end), buffers included."""
        sums = self.busy_sums[member]
        return sums[end + self.before + self.after] - sums[start] == 0

    def open_over(self, start: int, end: int) -> bool:
        """Whether window minutes [start, end) are all open."""
        return self.open_sums[end] - self.open_sums[start] == 0

    def group_ok(self, free: Sequence[int]) -> bool:
        """Whether this group of free participants is enough."""
        if not set(self.required) <= set(free):
            return False
        need = self.search.required
        return need is None or len(free) >= need

    def slot(self, start: int, end: int) -> Slot | None:
        """The slot over window minutes [start, end) if it qualifies."""
        if not self.open_over(start, end):
            return None
        free = [m for m in self.members if self.free(m, start, end)]
        if not self.group_ok(free):
            return None
        at = self.search.window.start
        available = tuple(free) if self.search.required is not None else ()
        return Slot(at + start * MINUTE, at + end * MINUTE, available)

    def answer(self) -> list[Slot]:
        """Every result the definitions give, in order (before max_results)."""
        search = self.search
        if search.format == "periods":
            return self._periods()
        found: list[Slot] = []
        floor = 0
        for start in range(self.length - self.duration + 1):
            if search.format == "slots" and start < floor:
                continue
            if not self.on_grid(search.window.start + start * MINUTE):
                continue
            slot = self.slot(start, start + self.duration)
            if slot is not None:
                found.append(slot)
                floor = start + self.duration
        return found

    def _periods(self) -> list[Slot]:
        """Maximal runs free for some group that is enough, at least the duration long."""
        if self.search.required is None:
            groups: list[tuple[int, ...]] = [tuple(self.required)]
        else:
            groups = [
                group
                for size in range(1, len(self.members) + 1)
                for group in itertools.combinations(self.members, size)
                if self.group_ok(group)
            ]
        runs: set[tuple[int, int]] = set()
        for group in groups:
            start: int | None = None
            for k in range(self.length + 1):
                good = (
                    k < self.length and self.open[k] and all(self.free(m, k, k + 1) for m in group)
                )
                if good and start is None:
                    start = k
                elif not good and start is not None:
                    runs.add((start, k))
                    start = None
        maximal = [
            (a, b)
            for a, b in runs
            if not any(c <= a and b <= d and (c, d) != (a, b) for c, d in runs)
        ]
        found = []
        for a, b in sorted(maximal):
            if b - a >= self.duration:
                slot = self.slot(a, b)
                assert slot is not None
                found.append(slot)
        return found


def _sums(flags: Sequence[bool]) -> list[int]:
    """Prefix sums of the flags."""
    out = [0]
    for flag in flags:
        out.append(out[-1] + flag)
    return out


# --- strategies ----------------------------------------------------------------------------


@st.composite
def cases(draw: st.DrawFn) -> Case:
    """A search over up to two days near a DST change (or anywhere in 2026/27), with up to
    four participants' random calendars."""
    if draw(st.booleans()):
        day = draw(st.sampled_from(DST_DAYS)) + timedelta(days=draw(st.integers(-1, 1)))
    else:
        day = date(2026, 1, 1) + timedelta(days=draw(st.integers(0, 729)))
    start = datetime.combine(day, datetime.min.time(), UTC) + draw(st.integers(-720, 720)) * MINUTE
    window = Window(start=start, end=start + draw(st.integers(1, 2 * 1440)) * MINUTE)
    zone: tzinfo = UTC
    rules: tuple[OpenHours, ...] = ()
    if draw(st.booleans()):
        zone = ZoneInfo(draw(st.sampled_from(ZONES)))
        rules = tuple(draw(st.lists(open_hours(), min_size=1, max_size=3)))
    count = draw(st.integers(1, 4))
    optional = tuple(draw(st.lists(st.booleans(), min_size=count, max_size=count)))
    required: int | None = draw(st.none() | st.integers(1, count))
    if required is None and all(optional):
        optional = (False, *optional[1:])
    search = SlotSearch(
        window=window,
        duration=draw(st.sampled_from([1, 15, 30, 45, 60, 90]) | st.integers(1, 240)) * MINUTE,
        interval=draw(st.sampled_from([1, 5, 7, 15, 30, 45, 60, 90])) * MINUTE,
        buffer_before=draw(st.sampled_from([0, 0, 5, 15]) | st.integers(0, 90)) * MINUTE,
        buffer_after=draw(st.sampled_from([0, 0, 10, 30]) | st.integers(0, 90)) * MINUTE,
        open_hours=rules,
        zone=zone,
        required=required,
        format=draw(st.sampled_from(FORMATS)),
        max_results=draw(st.integers(1, 30) | st.just(1000)),
    )
    items = tuple(draw(calendars(search.reach)) for _ in range(count))
    statuses = draw(
        st.just(DEFAULT_BUSY_STATUSES) | st.frozensets(st.sampled_from(list(Status)), max_size=6)
    )
    policy = Policy(
        granularity_minutes=draw(st.sampled_from([0, 0, 5, 15, 30, 60])), busy_statuses=statuses
    )
    return Case(search=search, items=items, optional=optional, policy=policy)


@st.composite
def open_hours(draw: st.DrawFn) -> OpenHours:
    """A rule: some weekdays, a start and a later end, on quarter hours or any minute."""
    minutes = st.integers(0, 96).map(lambda q: q * 15) | st.integers(0, 1440)
    start = draw(minutes.filter(lambda m: m < 1440))
    end = draw(minutes.filter(lambda m: m > start))
    days = draw(st.frozensets(st.integers(0, 6), min_size=1))
    return OpenHours(days, start * MINUTE, end * MINUTE)


def calendars(reach: Window) -> st.SearchStrategy[tuple[BusyItem, ...] | None]:
    """A participant's items around the reach (minute-aligned), or None: unreadable."""
    length = (reach.end - reach.start) // MINUTE

    @st.composite
    def item(draw: st.DrawFn) -> BusyItem:
        start = reach.start + draw(st.integers(-120, length + 60)) * MINUTE
        end = start + draw(st.integers(1, 600)) * MINUTE
        return BusyItem(start, end, draw(st.sampled_from(list(Status))))

    items = st.lists(item(), max_size=8).map(lambda found: tuple(sorted(found)))
    return st.none() | items | items | items


# --- the properties ------------------------------------------------------------------------


@given(cases())
def test_the_search_agrees_with_a_minute_by_minute_oracle(case: Case) -> None:
    """Exactly the slots (or periods) the definitions give, in order, and truncated right."""
    expected = Oracle(case).answer()
    found = find_slots(case.search, case.participants())
    limit = case.search.max_results
    assert list(found.slots) == expected[:limit]
    assert found.truncated == (len(expected) > limit)


@given(cases())
def test_every_slot_is_free_open_inside_the_window_and_on_the_grid(case: Case) -> None:
    """No slot meets a blocking participant's widened busy time (buffers and granularity
    applied); every slot lies in the window and the open hours; ``slots`` are disjoint and
    on the grid; ``periods`` cannot be extended by a minute."""
    search, oracle = case.search, Oracle(case)
    found = find_slots(search, case.participants()).slots
    grain = timedelta(minutes=case.policy.granularity_minutes)
    previous_end: datetime | None = None
    for slot in found:
        assert search.window.start <= slot.start < slot.end <= search.window.end
        assert slot.end - slot.start >= search.duration
        for k in range((slot.end - slot.start) // MINUTE):
            assert oracle._is_open(slot.start + k * MINUTE)
        blocking = set(oracle.required) | set(slot.available)
        for member in blocking:
            items = case.items[member]
            assert items is not None, "an unreadable participant is never free"
            for item in items:
                if item.status not in case.policy.busy_statuses:
                    continue
                start, end = item.start, item.end
                if grain:
                    start = start - (start - EPOCH) % grain
                    end = end + (-(end - EPOCH)) % grain
                assert not (
                    start < slot.end + search.buffer_after
                    and slot.start - search.buffer_before < end
                )
        if search.format != "periods":
            assert slot.end - slot.start == search.duration
            assert oracle.on_grid(slot.start)
        if search.format == "slots" and previous_end is not None:
            assert slot.start >= previous_end
        previous_end = slot.end
        if search.format == "periods":
            at = search.window.start
            a, b = (slot.start - at) // MINUTE, (slot.end - at) // MINUTE
            for wider in ((a - 1, b), (a, b + 1)):
                inside = wider[0] >= 0 and wider[1] <= oracle.length
                assert not inside or oracle.slot(*wider) is None


# --- open hours and the grid across DST, by hand -----------------------------------------


@pytest.mark.parametrize(
    ("change", "before", "after"),
    [
        # Berlin: 09:00-17:00 is 08:00-16:00Z in winter, 07:00-15:00Z in summer.
        (date(2026, 3, 29), (8, 16), (7, 15)),
        (date(2026, 10, 25), (7, 15), (8, 16)),
        (date(2027, 3, 28), (8, 16), (7, 15)),
        (date(2027, 10, 31), (7, 15), (8, 16)),
    ],
)
def test_berlin_open_hours_follow_both_changes_of_2026_and_2027(
    change: date, before: tuple[int, int], after: tuple[int, int]
) -> None:
    """09:00-17:00 every day in Europe/Berlin, from the day before a change to the day after."""
    start = datetime.combine(change - timedelta(days=1), datetime.min.time(), UTC)
    search = SlotSearch(
        window=Window(start=start, end=start + timedelta(days=3)),
        duration=timedelta(hours=1),
        open_hours=(OpenHours(EVERY_DAY, timedelta(hours=9), timedelta(hours=17)),),
        zone=BERLIN,
        format="periods",
    )
    day = [start + timedelta(days=n) for n in range(3)]
    assert open_intervals(search) == [
        (day[0] + timedelta(hours=before[0]), day[0] + timedelta(hours=before[1])),
        (day[1] + timedelta(hours=after[0]), day[1] + timedelta(hours=after[1])),
        (day[2] + timedelta(hours=after[0]), day[2] + timedelta(hours=after[1])),
    ]
    assert spans(find_slots(search, [Participant(busy=())])) == open_intervals(search)


@pytest.mark.parametrize(
    ("change", "before", "after"),
    [
        # New York: 09:00-17:00 is 14:00-22:00Z in winter, 13:00-21:00Z in summer.
        (date(2026, 3, 8), (14, 22), (13, 21)),
        (date(2026, 11, 1), (13, 21), (14, 22)),
        (date(2027, 3, 14), (14, 22), (13, 21)),
        (date(2027, 11, 7), (13, 21), (14, 22)),
    ],
)
def test_new_york_open_hours_follow_both_changes_of_2026_and_2027(
    change: date, before: tuple[int, int], after: tuple[int, int]
) -> None:
    """09:00-17:00 every day in America/New_York around each change (a Sunday)."""
    start = datetime.combine(change - timedelta(days=1), datetime.min.time(), UTC)
    search = SlotSearch(
        window=Window(start=start, end=start + timedelta(days=3)),
        duration=timedelta(minutes=30),
        interval=timedelta(minutes=30),
        open_hours=(OpenHours(EVERY_DAY, timedelta(hours=9), timedelta(hours=17)),),
        zone=NEW_YORK,
        format="slots",
        max_results=1000,
    )
    found = find_slots(search, [Participant(busy=())])
    by_day: dict[date, list[datetime]] = {}
    for slot in found.slots:
        by_day.setdefault(slot.start.date(), []).append(slot.start)
    expected = [before, after, after]
    for n, (first, last) in enumerate(expected):
        starts = by_day[(start + timedelta(days=n)).date()]
        assert starts[0] == start + timedelta(days=n, hours=first)
        assert starts[-1] == start + timedelta(days=n, hours=last, minutes=-30)
        assert len(starts) == 16
        assert all(s.astimezone(NEW_YORK).minute in (0, 30) for s in starts)


def test_open_hours_over_the_skipped_and_the_repeated_hour() -> None:
    """02:00-04:00 in Berlin: one hour on the spring change (02:00-03:00 never happens),
    three on the autumn one (02:00-03:00 happens twice, and is open both times)."""
    rule = (OpenHours(EVERY_DAY, timedelta(hours=2), timedelta(hours=4)),)

    def opened(day: date) -> list[tuple[datetime, datetime]]:
        start = datetime.combine(day, datetime.min.time(), UTC) - timedelta(hours=3)
        window = Window(start=start, end=start + timedelta(hours=12))
        return open_intervals(
            SlotSearch(window=window, duration=MINUTE, open_hours=rule, zone=BERLIN)
        )

    assert opened(date(2026, 3, 29)) == [(utc(2026, 3, 29, 1), utc(2026, 3, 29, 2))]
    assert opened(date(2026, 10, 25)) == [(utc(2026, 10, 25, 0), utc(2026, 10, 25, 3))]


def test_the_grid_counts_from_local_midnight_across_a_change() -> None:
    """A 45-minute grid in New York: 00:00, 00:45, 01:30, then 03:00 on the spring change
    (02:15 never happens), and the same wall-clock marks the next day, an hour earlier in UTC."""
    window = Window(start=utc(2026, 3, 8, 5), end=utc(2026, 3, 10, 5))
    grid = Grid.of(
        SlotSearch(window=window, duration=MINUTE, interval=timedelta(minutes=45), zone=NEW_YORK)
    )
    marks = [grid.ceil(window.start)]
    while len(marks) < 5:
        marks.append(grid.ceil(marks[-1] + MINUTE))
    assert [m.astimezone(NEW_YORK).strftime("%H:%M") for m in marks] == [
        "00:00",
        "00:45",
        "01:30",
        "03:00",
        "03:45",
    ]
    assert grid.ceil(utc(2026, 3, 9, 4, 1)) == utc(2026, 3, 9, 4, 45)  # 00:45 EDT


def test_a_grid_that_does_not_divide_the_day_restarts_at_midnight() -> None:
    """A 7-minute grid in UTC: ..., 23:55, then 00:00 (not 00:02)."""
    window = Window(start=utc(2026, 5, 1), end=utc(2026, 5, 3))
    grid = Grid.of(SlotSearch(window=window, duration=MINUTE, interval=7 * MINUTE))
    assert grid.ceil(utc(2026, 5, 1, 23, 50)) == utc(2026, 5, 1, 23, 55)
    assert grid.ceil(utc(2026, 5, 1, 23, 56)) == utc(2026, 5, 2)


# --- meetings at UTC midnight, all-day events, buffers, counts -----------------------------


def test_a_meeting_across_utc_midnight_blocks_both_days() -> None:
    """23:30-00:30Z blocks the end of one UTC day and the start of the next."""
    window = Window(start=utc(2026, 6, 1, 22), end=utc(2026, 6, 2, 2))
    search = SlotSearch(window=window, duration=timedelta(minutes=30), format="periods")
    busy = ((utc(2026, 6, 1, 23, 30), utc(2026, 6, 2, 0, 30)),)
    assert spans(find_slots(search, [Participant(busy=busy)])) == [
        (utc(2026, 6, 1, 22), utc(2026, 6, 1, 23, 30)),
        (utc(2026, 6, 2, 0, 30), utc(2026, 6, 2, 2)),
    ]


def test_an_all_day_event_blocks_the_whole_local_day_it_covers_in_utc() -> None:
    """Graph sends all-day events at UTC midnight: 2026-06-02 00:00-24:00Z. Berlin's open
    hours that day (07:00-15:00Z) are gone; the neighbours stay."""
    window = Window(start=utc(2026, 6, 1), end=utc(2026, 6, 4))
    search = SlotSearch(
        window=window,
        duration=timedelta(hours=1),
        open_hours=(hours(9, 17),),
        zone=BERLIN,
        format="periods",
    )
    all_day = ((utc(2026, 6, 2), utc(2026, 6, 3)),)
    assert spans(find_slots(search, [Participant(busy=all_day)])) == [
        (utc(2026, 6, 1, 7), utc(2026, 6, 1, 15)),
        (utc(2026, 6, 3, 7), utc(2026, 6, 3, 15)),
    ]


def test_an_all_day_event_in_new_york_reaches_into_the_evening_before() -> None:
    """An all-day event at UTC midnight runs from 20:00 to 20:00 in New York (summer): of
    18:00-22:00 open hours it takes the end of one evening and the start of the next."""
    window = Window(start=utc(2026, 6, 1, 12), end=utc(2026, 6, 3, 12))
    search = SlotSearch(
        window=window,
        duration=timedelta(hours=1),
        open_hours=(OpenHours(EVERY_DAY, timedelta(hours=18), timedelta(hours=22)),),
        zone=NEW_YORK,
        format="periods",
    )
    all_day = ((utc(2026, 6, 2), utc(2026, 6, 3)),)
    assert spans(find_slots(search, [Participant(busy=all_day)])) == [
        (utc(2026, 6, 1, 22), utc(2026, 6, 2)),  # 18:00-20:00 EDT on June 1
        (utc(2026, 6, 3), utc(2026, 6, 3, 2)),  # 20:00-22:00 EDT on June 2
    ]


def test_buffers_keep_distance_from_busy_time_outside_the_window() -> None:
    """A meeting ending 09:00, before the window, still needs its 15-minute buffer."""
    window = Window(start=utc(2026, 6, 1, 9), end=utc(2026, 6, 1, 11))
    search = SlotSearch(
        window=window,
        duration=timedelta(minutes=30),
        buffer_before=timedelta(minutes=15),
        buffer_after=timedelta(minutes=10),
    )
    busy = (
        (utc(2026, 6, 1, 8), utc(2026, 6, 1, 9)),
        (utc(2026, 6, 1, 10, 30), utc(2026, 6, 1, 12)),
    )
    assert spans(find_slots(search, [Participant(busy=busy)])) == [
        (utc(2026, 6, 1, 9, 15), utc(2026, 6, 1, 9, 45)),
        (utc(2026, 6, 1, 9, 45), utc(2026, 6, 1, 10, 15)),  # 10 minutes before 10:30
    ]


def test_a_count_lists_who_is_free_and_unknown_participants_never_are() -> None:
    """required 1 of two: each slot lists who is free; an unreadable one is never listed."""
    window = Window(start=utc(2026, 6, 1, 9), end=utc(2026, 6, 1, 11))
    search = SlotSearch(window=window, duration=timedelta(hours=1), interval=timedelta(hours=1),
                        required=1)  # fmt: skip
    adele = Participant(busy=((utc(2026, 6, 1, 9), utc(2026, 6, 1, 10)),), optional=True)
    megan = Participant(busy=None, optional=True)
    alex = Participant(busy=(), optional=True)
    found = find_slots(search, [adele, megan, alex])
    assert [(s.start.hour, s.available) for s in found.slots] == [(9, (2,)), (10, (0, 2))]


def test_optional_participants_do_not_block_but_required_ones_always_do() -> None:
    """required "all" ignores the optional one; a count still needs every required one."""
    window = Window(start=utc(2026, 6, 1, 9), end=utc(2026, 6, 1, 11))
    busy_ten = ((utc(2026, 6, 1, 10), utc(2026, 6, 1, 11)),)
    busy_nine = ((utc(2026, 6, 1, 9), utc(2026, 6, 1, 10)),)
    host = Participant(busy=busy_ten)
    guest = Participant(busy=busy_nine, optional=True)

    def starts(required: int | None) -> list[int]:
        search = SlotSearch(window=window, duration=timedelta(hours=1), required=required)
        return [s.start.hour for s in find_slots(search, [host, guest]).slots]

    assert starts(None) == [9]
    assert starts(1) == [9]
    assert starts(2) == []


def test_periods_of_different_groups_may_overlap() -> None:
    """Any one of two: adele is free 09-11 and megan 10-12, so both periods are maximal."""
    window = Window(start=utc(2026, 6, 1, 9), end=utc(2026, 6, 1, 12))
    search = SlotSearch(window=window, duration=timedelta(hours=1), required=1, format="periods")
    adele = Participant(busy=((utc(2026, 6, 1, 11), utc(2026, 6, 1, 12)),), optional=True)
    megan = Participant(busy=((utc(2026, 6, 1, 9), utc(2026, 6, 1, 10)),), optional=True)
    found = find_slots(search, [adele, megan])
    assert [(s.start.hour, s.end.hour, s.available) for s in found.slots] == [
        (9, 11, (0,)),
        (10, 12, (1,)),
    ]


def test_max_results_truncates() -> None:
    """Every 15 minutes over a free day, at most 10, and the answer says more were left."""
    window = Window(start=utc(2026, 6, 1), end=utc(2026, 6, 2))
    search = SlotSearch(
        window=window, duration=timedelta(minutes=30), format="overlapping_slots", max_results=10
    )
    found = find_slots(search, [Participant(busy=())])
    assert len(found.slots) == 10
    assert found.truncated
    assert found.slots[1].start - found.slots[0].start == timedelta(minutes=15)
