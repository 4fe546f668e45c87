"""The slot search in the availability service: admitted like lookup(), fed by the same cache."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from proxy.access.consumers import Consumer
from proxy.access.rate import TokenBuckets
from proxy.availability.memo import ResponseMemo
from proxy.availability.service import Availability
from proxy.config.schema import LimitSettings
from proxy.core.clock import FixedWallClock, ManualClock
from proxy.core.errors import BadRequest, Code, Forbidden
from proxy.core.free_time import SlotQuestion, SlotSearch
from proxy.core.model import BusyItem, ErrorCode, Query, Status, Window
from proxy.core.policy import Policy
from proxy.observability.metrics import Metrics
from proxy.sources.cache import CachedScheduleSource
from tests.support.fakes import FakeSource

NOW = datetime(2026, 1, 1, tzinfo=UTC)
ADELE, MEGAN, ALEX = "adele@x.example", "megan@x.example", "alex@x.example"
HOUR = timedelta(hours=1)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """An instant in June 2026, UTC."""
    return datetime(2026, 6, day, hour, minute, tzinfo=UTC)


def service(fake: FakeSource) -> Availability:
    """The service over cache -> fake, with one-day fetches so the cache splits by UTC day."""
    clock = ManualClock()
    metrics = Metrics()
    cache = CachedScheduleSource(fake, ttl_s=60, max_entries=1000, clock=clock, metrics=metrics)
    return Availability(
        chain=cache,
        metrics=metrics,
        memo=ResponseMemo(cache, clock=clock),
        rate=TokenBuckets(clock),
        limits=LimitSettings(max_schedules=10, max_window_days=31),
        wall_clock=FixedWallClock(NOW),
    )


def consumer(**policy: Any) -> Consumer:
    """A consumer allowed x.example, with the given policy."""
    return Consumer(
        name="app", exact=frozenset(), domains=frozenset({"x.example"}), policy=Policy(**policy)
    )


def question(
    *schedules: str, optional: tuple[bool, ...] | None = None, **search: Any
) -> SlotQuestion:
    """A slot question for these participants (none optional unless said)."""
    return SlotQuestion(
        schedules=schedules,
        optional=optional or (False,) * len(schedules),
        search=SlotSearch(**{"duration": timedelta(minutes=30), **search}),
    )


async def test_a_meeting_across_utc_midnight_comes_back_whole_from_the_cache() -> None:
    """23:30-00:30Z is cached as two UTC days and still blocks exactly 23:30-00:30."""
    fake = FakeSource({ADELE: [BusyItem(at(1, 23, 30), at(2, 0, 30), Status.BUSY)]})
    window = Window(start=at(1, 22), end=at(2, 2))
    answer = await service(fake).slots(consumer(), question(ADELE, window=window, format="periods"))
    assert [(s.start, s.end) for s in answer.free.slots] == [
        (at(1, 22), at(1, 23, 30)),
        (at(2, 0, 30), at(2, 2)),
    ]
    assert answer.errors == ()


async def test_an_all_day_event_blocks_its_utc_day() -> None:
    """An all-day event (UTC midnight to midnight, as Graph sends it) leaves nothing that day."""
    fake = FakeSource({ADELE: [BusyItem(at(2, 0), at(3, 0), Status.OOF)]})
    window = Window(start=at(1, 12), end=at(3, 12))
    answer = await service(fake).slots(consumer(), question(ADELE, window=window, format="periods"))
    assert [(s.start, s.end) for s in answer.free.slots] == [
        (at(1, 12), at(2, 0)),
        (at(3, 0), at(3, 12)),
    ]


async def test_busy_statuses_and_granularity_are_the_consumers() -> None:
    """Tentative blocks only when the consumer counts it; a 30-minute grid widens 09:10-09:40."""
    items = [
        BusyItem(at(1, 9, 10), at(1, 9, 40), Status.BUSY),
        BusyItem(at(1, 11), at(1, 12), Status.TENTATIVE),
    ]
    fake = FakeSource({ADELE: items})
    window = Window(start=at(1, 9), end=at(1, 13))
    ask = question(ADELE, window=window, format="periods")
    plain = await service(fake).slots(consumer(busy_statuses=frozenset({Status.BUSY})), ask)
    assert [(s.start, s.end) for s in plain.free.slots] == [(at(1, 9, 40), at(1, 13))]
    coarse = await service(fake).slots(consumer(granularity_minutes=30), ask)
    assert [(s.start, s.end) for s in coarse.free.slots] == [
        (at(1, 10), at(1, 11)),
        (at(1, 12), at(1, 13)),
    ]


async def test_buffers_are_fetched_outside_the_window() -> None:
    """A 09:00 window with a 30-minute buffer before it fetches, and respects, 08:30-09:00."""
    fake = FakeSource({ADELE: [BusyItem(at(1, 8), at(1, 8, 45), Status.BUSY)]})
    window = Window(start=at(1, 9), end=at(1, 10))
    ask = question(ADELE, window=window, buffer_before=timedelta(minutes=30))
    answer = await service(fake).slots(consumer(), ask)
    assert [s.start for s in answer.free.slots] == [at(1, 9, 15)]
    assert fake.calls[0].window.start <= at(1, 8, 30)


async def test_an_unreadable_participant_is_busy_throughout_and_listed() -> None:
    """not_found and throttled participants block "all"; with a count, the others still meet."""
    fake = FakeSource({ADELE: []}, errors={MEGAN: ErrorCode.THROTTLED})
    window = Window(start=at(1, 9), end=at(1, 10))
    avail = service(fake)
    blocked = await avail.slots(consumer(), question(ADELE, "Megan@x.example", window=window))
    assert blocked.free.slots == ()
    assert blocked.errors == (("Megan@x.example", ErrorCode.THROTTLED),)
    either = await avail.slots(
        consumer(),
        question(ADELE, MEGAN, ALEX, optional=(True, True, True), window=window, required=1),
    )
    assert either.free.slots
    assert {slot.available for slot in either.free.slots} == {(0,)}
    assert either.errors == ((MEGAN, ErrorCode.THROTTLED), (ALEX, ErrorCode.NOT_FOUND))


async def test_a_slots_only_key_may_ask_for_slots_and_nothing_else() -> None:
    """detail = "slots": lookup() is refused before any fetch; slots() is answered."""
    fake = FakeSource({ADELE: []})
    avail = service(fake)
    window = Window(start=at(1, 9), end=at(1, 10))
    with pytest.raises(Forbidden) as refused:
        await avail.lookup(consumer(detail="slots"), Query(schedules=(ADELE,), window=window))
    assert refused.value.code is Code.SLOTS_ONLY
    assert fake.calls == []
    answer = await avail.slots(consumer(detail="slots"), question(ADELE, window=window))
    assert answer.free.slots


@pytest.mark.parametrize(
    ("who", "window", "code"),
    [
        (("nobody@y.example",), Window(start=at(1, 9), end=at(1, 10)), Code.SCHEDULE_NOT_ALLOWED),
        ((ADELE,), Window(start=at(1, 9), end=at(3, 9) + timedelta(days=30)), Code.WINDOW_TOO_LONG),
        ((ADELE,), Window(start=NOW - timedelta(days=1), end=NOW + HOUR), Code.WINDOW_TOO_EARLY),
        (tuple(f"p{n}@x.example" for n in range(11)), Window(start=at(1, 9), end=at(1, 10)),
         Code.TOO_MANY_SCHEDULES),
    ],
)  # fmt: skip
async def test_a_slot_question_is_admitted_as_lookup_admits(
    who: tuple[str, ...], window: Window, code: Code
) -> None:
    """Allowlist, window length, look-back and participant count: refused before any fetch."""
    fake = FakeSource()
    with pytest.raises((Forbidden, BadRequest)) as refused:
        await service(fake).slots(consumer(), question(*who, window=window))
    assert refused.value.code is code
    assert fake.calls == []


async def test_a_large_search_runs_beside_the_event_loop() -> None:
    """Ten full calendars over a month are sorted and swept off the loop: while that search
    runs, other tasks keep getting turns (on the loop they would get none until it ended)."""
    people = [f"p{n}@x.example" for n in range(10)]

    def busy(day: int, minute: int) -> BusyItem:
        start = at(1, 0) + timedelta(days=day, minutes=minute)
        return BusyItem(start, start + timedelta(minutes=25), Status.BUSY)

    calendars = {
        person: [busy(d, m) for d in range(28) for m in range(n, 1440, 70)]
        for n, person in enumerate(people)
    }
    avail = service(FakeSource(calendars))
    ask = question(*people, window=Window(start=at(1, 0), end=at(29, 0)), required=3,
                   optional=(False,) + (True,) * 9, interval=timedelta(minutes=5))  # fmt: skip
    first = await avail.slots(consumer(), ask)  # fetched and cached
    turns, done = 0, False

    async def other_work() -> None:
        nonlocal turns
        while not done:
            await asyncio.sleep(0)
            turns += 1

    beside = asyncio.create_task(other_work())
    again = await avail.slots(consumer(), ask)
    done = True
    await beside
    assert again == first
    assert first.free.slots
    # From the cache the search itself awaits a few times at most; beside it, thousands.
    assert turns > 200, turns
