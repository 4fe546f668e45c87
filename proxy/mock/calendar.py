"""Calendars generated per (mailbox, local day): deterministic, lazy and cheap.

Nothing is stored: the events of a day are recomputed from a hash of (seed, address, date), so
a 10,000-mailbox organisation costs nothing until someone asks for a schedule.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

from proxy.mock.canary import canary, seeded_random
from proxy.mock.mailbox import Mailbox

Status = Literal["free", "tentative", "busy", "oof", "workingElsewhere", "unknown"]
# Events that start on one local day end by this time after the next local midnight.
LATEST_END = timedelta(hours=2)
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

_MEETINGS = (
    "Quarterly business review",
    "1:1",
    "Design sync",
    "Budget planning",
    "Customer call",
    "Interview loop",
    "Sprint planning",
    "Architecture review",
    "Board prep",
    "Vendor negotiation",
    "Performance review",
    "Recruiting sync",
    "Legal check-in",
    "Incident retro",
)
_WEEKLY = (
    "Team weekly",
    "Leadership sync",
    "Project status",
    "Office hours",
    "Pipeline review",
    "Community of practice",
)
_PLACES = (
    "Teams meeting",
    "Room 4.12",
    "Cafeteria",
    "Building 2, floor 3",
    "Client site",
    "Zoom bridge",
    "Harry's Bar",
)


@dataclass(frozen=True, kw_only=True)
class CalendarEvent:
    """One calendar entry as the mailbox stores it; times are aware UTC instants."""

    start: datetime
    end: datetime
    status: Status
    subject: str
    location: str
    is_private: bool
    all_day: bool = False
    series: str | None = None
    """Which recurrence produced it ("standup", "weekly-0"…); never sent, for tests to find."""


@dataclass(frozen=True, kw_only=True)
class WeeklySeries:
    """A meeting recurring every week at a fixed local wall-clock time."""

    weekday: int
    start: time
    minutes: int
    title: str


@dataclass(frozen=True, kw_only=True)
class Profile:
    """The stable habits of one mailbox: working hours and recurring meetings."""

    working_days: tuple[int, ...]
    work_start: time
    work_end: time
    standup: time | None
    weekly: tuple[WeeklySeries, ...]


@lru_cache(maxsize=16_384)
def profile(mailbox: Mailbox, seed: int) -> Profile:
    """Return the habits of ``mailbox``; the same for the same seed."""
    rng = seeded_random(seed, mailbox.address, "profile")
    if mailbox.kind == "room":
        return Profile(
            working_days=(0, 1, 2, 3, 4),
            work_start=time(7, 0),
            work_end=time(19, 0),
            standup=None,
            weekly=(),
        )
    weekly = tuple(
        WeeklySeries(
            weekday=rng.randrange(5),
            start=time(rng.choice((10, 11, 13, 14, 15, 16)), rng.choice((0, 30))),
            minutes=rng.choice((30, 60)),
            title=rng.choice(_WEEKLY),
        )
        for _ in range(3)
    )
    return Profile(
        working_days=(0, 1, 2, 3, 4),
        work_start=time(rng.choice((8, 9)), rng.choice((0, 30))),
        work_end=time(rng.choice((17, 18)), rng.choice((0, 30))),
        standup=time(9, 30),
        weekly=weekly,
    )


def events_between(
    mailbox: Mailbox, start: datetime, end: datetime, *, seed: int
) -> list[CalendarEvent]:
    """Return the events overlapping [start, end), whole (not clipped), sorted by start."""
    zone = zone_info(mailbox.time_zone)
    last_instant = end - timedelta(microseconds=1)
    # A day's timed events end by LATEST_END local time the next day; its all-day event covers
    # that date in UTC. Those two bounds say which local days can reach into the window.
    day = min((start.astimezone(zone) - LATEST_END).date(), start.date())
    last = max(last_instant.astimezone(zone).date(), last_instant.date())
    found: list[CalendarEvent] = []
    while day <= last:
        found.extend(e for e in day_events(mailbox, seed, day) if e.start < end and e.end > start)
        day += timedelta(days=1)
    found.sort(key=lambda e: (e.start, e.end))
    return found


@lru_cache(maxsize=64)
def zone_info(name: str) -> ZoneInfo:
    """Return the zone called ``name``, kept (ZoneInfo's own cache holds only eight)."""
    return ZoneInfo(name)


@lru_cache(maxsize=8_192)
def day_events(mailbox: Mailbox, seed: int, day: date) -> tuple[CalendarEvent, ...]:
    """Return the events that begin on local ``day`` of ``mailbox``; pure function of its inputs."""
    rng = seeded_random(seed, mailbox.address, day.isoformat())
    maker = _DayMaker(mailbox, seed, day, rng)
    if mailbox.kind == "room":
        maker.room_bookings()
    elif day.weekday() >= 5:
        maker.weekend()
    else:
        maker.workday(profile(mailbox, seed))
    return tuple(maker.events)


class _DayMaker:
    """Accumulates one local day's events, planting canaries in every free-text field."""

    def __init__(self, mailbox: Mailbox, seed: int, day: date, rng: random.Random) -> None:
        self.mailbox, self.seed, self.day, self.rng = mailbox, seed, day, rng
        self.zone = zone_info(mailbox.time_zone)
        self.events: list[CalendarEvent] = []

    def at(self, wall: time, *, days: int = 0) -> datetime:
        """Return the UTC instant of local wall-clock ``wall`` on this day (+``days``)."""
        local = datetime.combine(self.day + timedelta(days=days), wall, tzinfo=self.zone)
        return local.astimezone(UTC)

    def add(
        self,
        start: datetime,
        end: datetime,
        status: Status,
        title: str,
        *,
        all_day: bool = False,
        series: str | None = None,
    ) -> None:
        n = len(self.events)
        key = (self.seed, self.mailbox.address, self.day.isoformat(), n)
        place = (
            self.mailbox.display_name if self.mailbox.kind == "room" else self.rng.choice(_PLACES)
        )
        self.events.append(
            CalendarEvent(
                start=start,
                end=end,
                status=status,
                subject=f"{title} {canary('subj', *key)}",
                location=f"{place} {canary('loc', *key)}",
                is_private=self.rng.random() < 0.1,
                all_day=all_day,
                series=series,
            )
        )

    def all_day(self, status: Status, title: str) -> None:
        # Graph reports all-day events at UTC midnight, whatever the mailbox's zone.
        midnight = datetime.combine(self.day, time(0), tzinfo=UTC)
        self.add(midnight, midnight + timedelta(days=1), status, title, all_day=True)

    def slot(
        self, first_hour: int, last_hour: int, minutes: int, status: Status, title: str
    ) -> None:
        wall = time(self.rng.randrange(first_hour, last_hour), self.rng.choice((0, 30)))
        start = self.at(wall)
        self.add(start, start + timedelta(minutes=minutes), status, title)

    def weekend(self) -> None:
        # Weekends are mostly free; now and then a personal appointment.
        if self.rng.random() < 0.1:
            self.slot(10, 16, 120, "busy", "Family brunch")

    def workday(self, habits: Profile) -> None:
        rng = self.rng
        if rng.random() < 0.05:
            self.all_day("oof", "Vacation")
            return
        if habits.standup is not None:
            start = self.at(habits.standup)
            self.add(
                start, start + timedelta(minutes=15), "busy", "Daily stand-up", series="standup"
            )
        for number, series in enumerate(habits.weekly):
            if series.weekday == self.day.weekday():
                start = self.at(series.start)
                end = start + timedelta(minutes=series.minutes)
                self.add(start, end, "busy", series.title, series=f"weekly-{number}")
        for _ in range(rng.choice((0, 1, 1, 2, 2, 3))):
            status: Status = rng.choices(("busy", "tentative", "unknown"), (80, 18, 2))[0]
            self.slot(10, 17, rng.choice((30, 60, 90)), status, rng.choice(_MEETINGS))
        if rng.random() < 0.2:
            self.slot(10, 16, 120, "tentative", "Hold")
        if rng.random() < 0.3:
            start = self.at(time(12, 0))
            self.add(start, start + timedelta(hours=1), "free", "Lunch")
        if rng.random() < 0.1:
            self.add(
                self.at(habits.work_start),
                self.at(habits.work_end),
                "workingElsewhere",
                "Working from home",
            )
        if rng.random() < 0.05:
            self.add(self.at(time(22, 30)), self.at(time(0, 30), days=1), "busy", "Release window")
        if rng.random() < 0.05:
            status = rng.choice(("free", "busy"))
            self.all_day(status, "Team offsite" if status == "busy" else "Company anniversary")

    def room_bookings(self) -> None:
        if self.day.weekday() >= 5:
            return
        for _ in range(self.rng.randrange(2, 7)):
            self.slot(8, 18, self.rng.choice((30, 60)), "busy", self.rng.choice(_MEETINGS))
