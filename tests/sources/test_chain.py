"""The chain's links composed in memory, in front of a fake source: no HTTP, no polling."""

from __future__ import annotations

import asyncio
import operator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from proxy.core.clock import ManualClock
from proxy.core.errors import Code, UpstreamFailure
from proxy.core.model import BusyItem, ErrorCode, ScheduleResult, Status, Window
from proxy.core.policy import Policy, apply_policy, fetch_window
from proxy.observability.metrics import Metrics
from proxy.sources.batching import BatchingScheduleSource
from proxy.sources.breaker import BreakerScheduleSource, CircuitBreaker
from proxy.sources.cache import CachedScheduleSource
from tests.support.fakes import FakeSource

MONDAY = datetime(2026, 3, 16, tzinfo=UTC)
ADELE, ALEX, MEGAN = "adele@x.example", "alex@x.example", "megan@x.example"


def day(offset: int = 0, days: int = 1) -> Window:
    """Whole UTC days from MONDAY + offset."""
    start = MONDAY + timedelta(days=offset)
    return Window(start=start, end=start + timedelta(days=days))


def item(hours: float, length: float, status: Status = Status.BUSY) -> BusyItem:
    """An item starting ``hours`` after MONDAY 00:00 UTC."""
    start = MONDAY + timedelta(hours=hours)
    return BusyItem(start, start + timedelta(hours=length), status)


def chain(
    fake: FakeSource,
    *,
    clock: ManualClock | None = None,
    min_fetch_days: int = 1,
    wait_s: float = 0.0,
    batch: int = 20,
    failures: int = 5,
    stale_s: float = 0.0,
) -> tuple[CachedScheduleSource, CircuitBreaker]:
    """cache -> batching -> breaker -> fake, as sources.chain builds it in front of Graph."""
    clock = clock or ManualClock()
    metrics = Metrics()
    breaker = CircuitBreaker(failures=failures, cool_down_s=30, clock=clock)
    batched = BatchingScheduleSource(
        BreakerScheduleSource(fake, breaker, metrics=metrics),
        wait_s=wait_s,
        max_schedules=batch,
        metrics=metrics,
    )
    cache = CachedScheduleSource(
        batched, ttl_s=60, max_entries=1000, min_fetch_days=min_fetch_days, clock=clock,
        metrics=metrics, stale_max_age_s=stale_s,
    )  # fmt: skip
    return cache, breaker


async def test_concurrent_questions_about_one_day_share_one_fetch() -> None:
    """Singleflight: three requests for the same mailbox-day while it is fetched: one call."""
    fake = FakeSource({ADELE: [item(9, 1)]})
    cache, _ = chain(fake)
    fake.held()
    asks = [asyncio.create_task(cache.get_schedules([ADELE], day())) for _ in range(3)]
    await fake.until_called(1)
    fake.release()
    answers = await asyncio.gather(*asks)
    assert len(fake.calls) == 1
    assert all(a == answers[0] for a in answers)
    assert answers[0][ADELE].items == (item(9, 1),)


async def test_misses_for_other_mailboxes_join_the_open_batch() -> None:
    """While a call is in flight, misses for different mailboxes over the same days go together."""
    fake = FakeSource({ADELE: [], ALEX: [], MEGAN: []})
    # The batch waits (up to 600 s) for company, and goes as soon as it holds two mailboxes.
    cache, _ = chain(fake, wait_s=600, batch=2)
    fake.held()
    first = asyncio.create_task(cache.get_schedules([ADELE], day()))
    await fake.until_called(1)
    alex = asyncio.create_task(cache.get_schedules([ALEX], day()))
    megan = asyncio.create_task(cache.get_schedules([MEGAN], day()))
    await fake.until_called(2)
    fake.release()
    await asyncio.gather(first, alex, megan)
    assert [sorted(call.addresses) for call in fake.calls] == [[ADELE], [ALEX, MEGAN]]


async def test_a_miss_fetches_its_block_and_later_days_in_it_are_hits() -> None:
    """A miss fetches the whole block of min_fetch_days days holding it, on a grid fixed by
    the calendar (13 to 20 March for Monday 16 March), so other questions inside the block
    are answered in memory; a question reaching into the next block fetches that one whole."""
    fake = FakeSource({ADELE: [item(-48 + 9, 1), item(24 + 9, 1), item(4 * 24 + 9, 1)]})
    cache, _ = chain(fake, min_fetch_days=8)
    await cache.get_schedules([ADELE], day())
    assert fake.calls[0].window == day(-3, 8)
    answer = await cache.get_schedules([ADELE], day(-3, 8))
    assert answer[ADELE].items == (item(-48 + 9, 1), item(24 + 9, 1), item(4 * 24 + 9, 1))
    answer = await cache.get_schedules([ADELE], day(1, 4))
    assert len(fake.calls) == 1
    assert answer[ADELE].items == (item(24 + 9, 1), item(4 * 24 + 9, 1))
    await cache.get_schedules([ADELE], day(4, 2))
    assert [call.window for call in fake.calls[1:]] == [day(5, 8)]


async def test_a_long_miss_is_not_rounded_out_into_another_call() -> None:
    """A window that one getSchedule call holds is fetched in one call, even where its
    blocks would not fit in one; with min_fetch_days 1 exactly the days missing are asked."""
    fake = FakeSource({ADELE: []})
    cache, _ = chain(fake, min_fetch_days=8)
    await cache.get_schedules([ADELE], day(0, 61))
    assert [call.window for call in fake.calls] == [day(0, 61)]
    fake = FakeSource({ADELE: []})
    cache, _ = chain(fake, min_fetch_days=1)
    await cache.get_schedules([ADELE], day(2, 3))
    assert [call.window for call in fake.calls] == [day(2, 3)]


async def test_not_found_is_cached_and_transient_errors_are_not() -> None:
    """An unknown address stays unknown for a TTL; a throttled one is asked again next time."""
    fake = FakeSource({ALEX: []}, errors={MEGAN: ErrorCode.THROTTLED})
    cache, _ = chain(fake)
    for _ in range(2):
        answer = await cache.get_schedules([ADELE, MEGAN], day())
        assert answer[ADELE].error is ErrorCode.NOT_FOUND
        assert answer[MEGAN].error is ErrorCode.THROTTLED
    assert [call.addresses for call in fake.calls] == [(ADELE, MEGAN), (MEGAN,)]


async def test_entries_expire_on_the_clock() -> None:
    """Past the TTL, a day is fetched again."""
    clock = ManualClock()
    fake = FakeSource({ADELE: []})
    cache, _ = chain(fake, clock=clock)
    await cache.get_schedules([ADELE], day())
    clock.advance(60)
    await cache.get_schedules([ADELE], day())
    assert len(fake.calls) == 1
    clock.advance(0.001)
    await cache.get_schedules([ADELE], day())
    assert len(fake.calls) == 2


async def test_a_schedule_graph_throttles_is_served_stale() -> None:
    """Past its TTL, a day whose schedule now answers throttled is served as held, marked
    stale, while serve-stale allows; then the code is reported."""
    clock = ManualClock()
    fake = FakeSource({ADELE: [item(9, 1)], ALEX: []})
    cache, _ = chain(fake, clock=clock, stale_s=30)
    await cache.get_schedules([ADELE, ALEX], day())
    clock.advance(61)
    fake.errors[ADELE] = ErrorCode.THROTTLED
    answer = await cache.get_schedules([ADELE, ALEX], day())
    assert answer[ADELE] == ScheduleResult(items=(item(9, 1),), stale=True)
    assert answer[ALEX] == ScheduleResult()
    clock.advance(30)
    answer = await cache.get_schedules([ADELE, ALEX], day())
    assert answer[ADELE].error is ErrorCode.THROTTLED


async def test_forget_during_a_fetch_keeps_nothing() -> None:
    """A fetch that lands after forget() answers its caller but stores nothing."""
    fake = FakeSource({ADELE: [item(9, 1)]})
    cache, _ = chain(fake)
    fake.held()
    asked = asyncio.create_task(cache.get_schedules([ADELE], day()))
    await fake.until_called(1)
    cache.forget([ADELE])
    fake.release()
    assert (await asked)[ADELE].items == (item(9, 1),)
    assert cache.entries() == []


async def test_forget_during_a_fetch_of_several_days_keeps_nothing_about_anyone() -> None:
    """A fetch of days that would be joined into a span, landing after forget(): answered,
    and nothing held about the mailbox in any form, then or after another question."""
    fake = FakeSource({ADELE: [item(9, 1), item(23, 2)], ALEX: [item(10, 1)]})
    cache, _ = chain(fake, min_fetch_days=3)
    fake.held()
    asked = asyncio.create_task(cache.get_schedules([ADELE], day(0, 3)))
    await fake.until_called(1)
    cache.forget([ADELE])
    fake.release()
    assert (await asked)[ADELE].items == (item(9, 1), item(23, 2))
    assert cache.mailboxes() == set()
    await cache.get_schedules([ALEX], day(0, 3))
    await cache.get_schedules([ALEX], day(0, 3))
    assert cache.mailboxes() == {ALEX}


async def test_the_breaker_opens_and_a_probe_closes_it() -> None:
    """After N whole failures Graph is not asked; after the cool-down one probe goes."""
    clock = ManualClock()
    fake = FakeSource({ADELE: []}, failure=UpstreamFailure("down", code=Code.UPSTREAM_UNAVAILABLE))
    cache, breaker = chain(fake, clock=clock, failures=2)
    for _ in range(2):
        with pytest.raises(UpstreamFailure):
            await cache.get_schedules([ADELE], day())
    assert len(fake.calls) == 2
    with pytest.raises(UpstreamFailure):
        await cache.get_schedules([ADELE], day())
    assert len(fake.calls) == 2
    clock.advance(30)
    fake.failure = None
    assert (await cache.get_schedules([ADELE], day()))[ADELE].error is None
    assert len(fake.calls) == 3
    assert breaker.state == "closed"


async def test_a_whole_failure_fails_only_when_nothing_can_be_answered() -> None:
    """With one mailbox cached and one not, a failing Graph fails only the uncached one."""
    fake = FakeSource({ADELE: [], ALEX: []})
    cache, _ = chain(fake)
    await cache.get_schedules([ADELE], day())
    fake.failure = UpstreamFailure("down", code=Code.UPSTREAM_UNAVAILABLE)
    answer = await cache.get_schedules([ADELE, ALEX], day())
    assert answer[ADELE] == ScheduleResult()
    assert answer[ALEX].error is ErrorCode.UPSTREAM_UNAVAILABLE
    with pytest.raises(UpstreamFailure):
        await cache.get_schedules([ALEX], day())


_STATUSES = st.sampled_from(list(Status))
_ITEMS = st.lists(
    st.tuples(st.integers(0, 6 * 24 * 4), st.integers(1, 3 * 24 * 4), _STATUSES).map(
        lambda t: BusyItem(
            MONDAY + timedelta(minutes=15 * t[0]),
            MONDAY + timedelta(minutes=15 * (t[0] + t[1])),
            t[2],
        )
    ),
    max_size=12,
)
_WINDOWS = st.tuples(st.integers(0, 6 * 24 * 4), st.integers(1, 5 * 24 * 4)).map(
    lambda t: Window(
        start=MONDAY + timedelta(minutes=15 * t[0]),
        end=MONDAY + timedelta(minutes=15 * (t[0] + t[1])),
    )
)


def union(items: tuple[BusyItem, ...]) -> dict[Status, list[tuple[datetime, datetime]]]:
    """Per status, its intervals merged: what anyone can tell from the answer about a status."""
    merged: dict[Status, list[tuple[datetime, datetime]]] = {}
    for entry in sorted(items):
        spans = merged.setdefault(entry.status, [])
        if spans and entry.start <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], entry.end))
        else:
            spans.append((entry.start, entry.end))
    return merged


def _span(start: int, length: int, status: Status = Status.FREE) -> BusyItem:
    """An item ``start`` quarter-hours after Monday, ``length`` quarter-hours long."""
    return BusyItem(
        MONDAY + timedelta(minutes=15 * start), MONDAY + timedelta(minutes=15 * (start + length)),
        status,
    )  # fmt: skip


def _quarters(start: int, length: int) -> Window:
    return Window(
        start=MONDAY + timedelta(minutes=15 * start),
        end=MONDAY + timedelta(minutes=15 * (start + length)),
    )


# Found by this test: pieces joined at a midnight in the wrong pairs (one clipped at the
# window's start), across a full day between, and after a fetch's edge merged equal pieces.
@example(items=[_span(96, 98), _span(97, 97), _span(98, 95)], warm=[], window=_quarters(97, 97))
@example(items=[_span(0, 194), _span(1, 193), _span(2, 191)], warm=[], window=_quarters(1, 193))
@example(items=[_span(209, 80), _span(209, 81)], warm=[_quarters(0, 1)], window=_quarters(0, 289))
@given(items=_ITEMS, warm=st.lists(_WINDOWS, max_size=3), window=_WINDOWS)
async def test_cached_answers_equal_the_source_for_any_calendar_and_window(
    items: list[BusyItem], warm: list[Window], window: Window
) -> None:
    """Whatever filled the cache before, an answer shows per status what the source shows."""
    fake = FakeSource({ADELE: items})
    cache, _ = chain(fake, min_fetch_days=3)
    for earlier in warm:
        await cache.get_schedules([ADELE], earlier)
    cached = (await cache.get_schedules([ADELE], window))[ADELE]
    direct = (await fake.get_schedules([ADELE], window))[ADELE]
    assert union(cached.items) == union(direct.items)
    assert len(cached.items) <= len(direct.items)
    assert all(window.start <= i.start < i.end <= window.end for i in cached.items)
    assert list(cached.items) == sorted(cached.items)


# Two windows over the same whole days (the first starts in day ``first``, both end in day
# ``first + days - 1``), edges anywhere inside those days: a sliding window asked again.
_SAME_DAYS = st.tuples(
    st.integers(0, 4), st.integers(2, 4), st.lists(st.integers(0, 95), min_size=4, max_size=4)
).map(
    lambda t: [
        Window(
            start=MONDAY + timedelta(days=t[0], minutes=15 * t[2][2 * n]),
            end=MONDAY + timedelta(days=t[0] + t[1] - 1, minutes=15 * (t[2][2 * n + 1] + 1)),
        )
        for n in range(2)
    ]
)


@given(items=_ITEMS, windows=_SAME_DAYS)
async def test_a_window_over_days_assembled_before_equals_the_source(
    items: list[BusyItem], windows: list[Window]
) -> None:
    """Asked again over the same days with other edges (the days' whole span assembled once,
    clipped each time), an answer still shows per status what the source shows, as the
    first did."""
    fake = FakeSource({ADELE: items})
    cache, _ = chain(fake, min_fetch_days=7)
    # And one day fewer from the same start, where that leaves a window: a span of its own.
    shorter = windows[0].end - timedelta(days=1)
    fewer = [Window(windows[0].start, shorter)] if shorter > windows[0].start else []
    for window in (*windows, *fewer, *reversed(windows)):
        cached = (await cache.get_schedules([ADELE], window))[ADELE]
        direct = (await fake.get_schedules([ADELE], window))[ADELE]
        assert union(cached.items) == union(direct.items)
        assert len(cached.items) <= len(direct.items)
        assert all(window.start <= i.start < i.end <= window.end for i in cached.items)
        assert all(map(operator.lt, cached.items, cached.items[1:]))


_POLICIES = st.builds(
    Policy,
    detail=st.sampled_from(["status", "busy"]),
    granularity_minutes=st.sampled_from([0, 0, 15, 30, 60, 1440]),
    busy_statuses=st.frozensets(_STATUSES, min_size=1),
)


@given(items=_ITEMS, warm=st.lists(_WINDOWS, max_size=3), window=_WINDOWS, policy=_POLICIES)
async def test_cached_answers_under_a_policy_equal_the_uncached_ones(
    items: list[BusyItem], warm: list[Window], window: Window, policy: Policy
) -> None:
    """Through the cache or straight from the source, a consumer's policy shows the same:
    the same items for busy-only answers (merged, so one form), and otherwise per status
    the same time, sorted, distinct and inside the window (default policy included, whose
    cached answer is passed on as the cache shaped it)."""
    fake = FakeSource({ADELE: items})
    cache, _ = chain(fake, min_fetch_days=3)
    for earlier in warm:
        await cache.get_schedules([ADELE], fetch_window(policy, earlier))
    fetched = fetch_window(policy, window)
    cached = apply_policy((await cache.get_schedules([ADELE], fetched))[ADELE], policy, window)
    direct = apply_policy((await fake.get_schedules([ADELE], fetched))[ADELE], policy, window)
    if policy.detail == "busy":
        assert cached == direct
    else:
        assert union(cached.items) == union(direct.items)
        assert len(cached.items) <= len(direct.items)
    assert all(window.start <= i.start < i.end <= window.end for i in cached.items)
    assert all(map(operator.lt, cached.items, cached.items[1:]))


async def test_expiry_of_a_full_cache_takes_turns_and_leaves_nothing() -> None:
    """Days past their age leave memory by a purge that gives the event loop turns: a full
    cache going stale at once is removed over several turns (bounded work per step), not in
    one, and completely."""
    clock = ManualClock()
    people = [f"p{n}@x.example" for n in range(600)]
    fake = FakeSource({person: [] for person in people})
    cache = CachedScheduleSource(fake, ttl_s=60, max_entries=10_000, clock=clock, metrics=Metrics())
    for n in range(0, len(people), 100):
        await cache.get_schedules(people[n : n + 100], day(days=3))
    assert len(cache.entries()) == 1800
    clock.advance(61)
    cache.count_hits(1, now=clock())  # what starts a due purge (a memo hit counted)
    held = [len(cache.entries())]
    while held[-1]:
        await asyncio.sleep(0)
        held.append(len(cache.entries()))
        assert len(held) < 100, "the purge never finished"
    assert held[0] == 1800
    assert any(0 < count < 1800 for count in held), held
