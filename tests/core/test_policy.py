"""Privacy policies: the pure rules, and exactly what a consumer sees through the real proxy."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import given
from hypothesis import strategies as st

from proxy.access.consumers import new_key
from proxy.config.schema import ConsumerSettings, Settings
from proxy.core.clock import FixedWallClock
from proxy.core.errors import BadRequest
from proxy.core.intervals import merge
from proxy.core.minimize import minimize
from proxy.core.model import BusyItem, ErrorCode, Query, ScheduleResult, Status, Window
from proxy.core.policy import Bounds, Policy, apply_policy, check_request, fetch_window
from proxy.mock import MOCK_DOMAIN, Fault, RunningMock
from tests.support.leaks import assert_no_leak
from tests.support.proxies import (
    ONE_ADDRESS,
    TEST_NOW,
    ProxyFactory,
    auth,
    proxy_settings,
    start_proxy,
)

DAY = Window(start=datetime(2026, 3, 16, tzinfo=UTC), end=datetime(2026, 3, 17, tzinfo=UTC))


def at(hour: int, minute: int = 0) -> datetime:
    """An instant on 2026-03-16 in UTC."""
    return datetime(2026, 3, 16, hour, minute, tzinfo=UTC)


def busy(start: datetime, end: datetime, status: Status = Status.BUSY) -> BusyItem:
    """A minimized item."""
    return BusyItem(start=start, end=end, status=status)


def view(result: ScheduleResult) -> list[tuple[str, str, str]]:
    """Items as (status, HH:MM, HH:MM) for readable assertions."""
    return [(i.status.value, f"{i.start:%H:%M}", f"{i.end:%H:%M}") for i in result.items]


# --- the pure rules -----------------------------------------------------------------------


def test_granularity_widens_to_the_grid() -> None:
    """granularity 30: a 09:10-09:40 meeting becomes 09:00-10:00; on-grid edges stay."""
    result = ScheduleResult(items=(busy(at(9, 10), at(9, 40)), busy(at(11), at(11, 30))))
    shaped = apply_policy(result, Policy(granularity_minutes=30), DAY)
    assert view(shaped) == [("busy", "09:00", "10:00"), ("busy", "11:00", "11:30")]


def test_busy_detail_collapses_and_merges() -> None:
    """busy: busy-counting statuses become busy; overlapping and touching intervals merge."""
    result = ScheduleResult(
        items=(
            busy(at(9), at(10)),
            busy(at(9, 30), at(10, 30), Status.TENTATIVE),
            busy(at(10, 30), at(11), Status.OOF),  # touches the previous one
            busy(at(12), at(13), Status.FREE),
            busy(at(14), at(15), Status.WORKING_ELSEWHERE),
            busy(at(16), at(17), Status.UNKNOWN),
        )
    )
    shaped = apply_policy(result, Policy(detail="busy"), DAY)
    assert view(shaped) == [("busy", "09:00", "11:00"), ("busy", "16:00", "17:00")]


def test_busy_statuses_choose_what_counts() -> None:
    """With busy_statuses = {busy}, tentative and oof are shown as free (left out)."""
    result = ScheduleResult(
        items=(busy(at(9), at(10)), busy(at(11), at(12), Status.TENTATIVE), busy(at(13), at(14)))
    )
    policy = Policy(detail="busy", busy_statuses=frozenset({Status.BUSY}))
    assert view(apply_policy(result, policy, DAY)) == [
        ("busy", "09:00", "10:00"),
        ("busy", "13:00", "14:00"),
    ]


def test_source_flags_are_kept() -> None:
    """A stale result stays marked stale whatever the policy does to its items."""
    stale = ScheduleResult(items=(busy(at(9, 10), at(9, 40)),), stale=True)
    assert apply_policy(stale, Policy(detail="busy", granularity_minutes=30), DAY).stale


def test_errors_pass_unchanged() -> None:
    """A per-schedule error code is not touched by any policy."""
    failed = ScheduleResult.failed(ErrorCode.NOT_FOUND)
    assert apply_policy(failed, Policy(detail="busy", granularity_minutes=60), DAY) == failed


def test_fetch_window_is_widened_to_the_grid() -> None:
    """The fetched window covers the requested one, on grid lines; no grid, no change."""
    window = Window(start=at(9, 10), end=at(17, 5))
    assert fetch_window(Policy(), window) == window
    assert fetch_window(Policy(granularity_minutes=60), window) == Window(start=at(9), end=at(18))


def test_merge_keeps_statuses_apart() -> None:
    """merge joins same-status neighbours only."""
    merged = merge([busy(at(9), at(10)), busy(at(10), at(11), Status.OOF), busy(at(10), at(12))])
    assert [(i.status, i.start, i.end) for i in merged] == [
        (Status.BUSY, at(9), at(12)),
        (Status.OOF, at(10), at(11)),
    ]


minutes_of_day = st.integers(min_value=0, max_value=24 * 60)
GRIDS = st.sampled_from([5, 15, 30, 60, 90, 120, 1440])


def graph_payload(address: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """A Graph value array with one busy meeting."""
    return [
        {
            "scheduleId": address,
            "scheduleItems": [
                {
                    "status": "busy",
                    "subject": "CANARY-subject",
                    "start": {
                        "dateTime": start.replace(tzinfo=None).isoformat(),
                        "timeZone": "UTC",
                    },
                    "end": {"dateTime": end.replace(tzinfo=None).isoformat(), "timeZone": "UTC"},
                }
            ],
        }
    ]


def consumer_view(
    policy: Policy, meeting: tuple[datetime, datetime], window: Window
) -> ScheduleResult:
    """What the service pipeline gives for one meeting: fetch window, minimize, policy."""
    fetched = fetch_window(policy, window)
    value = graph_payload("a@x.example", *meeting)
    result = minimize(value, requested=["a@x.example"], window=fetched)["a@x.example"]
    return apply_policy(result, policy, window)


@given(
    grid=GRIDS,
    detail=st.sampled_from(["status", "busy"]),
    start=minutes_of_day,
    length=st.integers(min_value=1, max_value=600),
    nudge=st.integers(min_value=0, max_value=1439),
    window_start=minutes_of_day,
    window_length=st.integers(min_value=1, max_value=2 * 24 * 60),
)
def test_exact_edges_are_never_revealed(
    grid: int,
    detail: str,
    start: int,
    length: int,
    nudge: int,
    window_start: int,
    window_length: int,
) -> None:
    """Two meetings whose edges fall in the same grid cells look identical in any window.

    So no choice of window (sliding its end minute by minute, say) reveals an exact edge.
    """
    policy = Policy(detail="busy" if detail == "busy" else "status", granularity_minutes=grid)
    base = datetime(2026, 3, 16, tzinfo=UTC)
    first = (base + timedelta(minutes=start), base + timedelta(minutes=start + length))
    # Move both edges within their grid cells (floor(x) < x' <= ceil(x) keeps the cells).
    cell = timedelta(minutes=grid)

    def same_cell(instant: datetime) -> datetime:
        floor = instant - (instant - datetime(1970, 1, 1, tzinfo=UTC)) % cell
        if floor == instant:
            return instant
        offset = timedelta(minutes=1 + nudge % max(1, grid - 1))
        return min(floor + offset, floor + cell)

    second = (same_cell(first[0]), same_cell(first[1]))
    if not second[0] < second[1]:
        return
    window = Window(
        start=base + timedelta(minutes=window_start),
        end=base + timedelta(minutes=window_start + window_length),
    )
    shown = consumer_view(policy, first, window)
    assert shown == consumer_view(policy, second, window)
    for item in shown.items:
        assert window.start <= item.start < item.end <= window.end


@given(
    items=st.lists(
        st.tuples(
            minutes_of_day,
            st.integers(min_value=1, max_value=300),
            st.sampled_from(list(Status)),
        ),
        max_size=20,
    ),
    grid=st.sampled_from([0, 15, 30, 60]),
)
def test_policies_never_narrow(items: list[tuple[int, int, Status]], grid: int) -> None:
    """Every busy-counting moment stays covered by a busy item (and a status by its status)."""
    base = datetime(2026, 3, 16, tzinfo=UTC)
    window = Window(start=base, end=base + timedelta(days=1))
    result = ScheduleResult(
        items=tuple(
            sorted(
                {
                    busy(
                        base + timedelta(minutes=s),
                        min(window.end, base + timedelta(minutes=s + n)),
                        st_,
                    )
                    for s, n, st_ in items
                    if base + timedelta(minutes=s) < window.end
                }
            )
        )
    )
    for detail in ("status", "busy"):
        policy = Policy(detail="busy" if detail == "busy" else "status", granularity_minutes=grid)
        shaped = apply_policy(result, policy, window)
        for original in result.items:
            if detail == "busy" and original.status not in policy.busy_statuses:
                continue
            wanted = Status.BUSY if detail == "busy" else original.status
            assert any(
                i.status == wanted and i.start <= original.start and original.end <= i.end
                for i in shaped.items
            ), (original, shaped)
        if detail == "busy":
            # Merged: no two busy items overlap or touch.
            ends = [(i.start, i.end) for i in shaped.items]
            assert all(a[1] < b[0] for a, b in itertools.pairwise(ends))


NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def window(days_from_now: float, length_days: float) -> Window:
    """A window relative to NOW."""
    start = NOW + timedelta(days=days_from_now)
    return Window(start=start, end=start + timedelta(days=length_days))


@pytest.mark.parametrize(
    ("policy", "schedules", "win", "code"),
    [
        (Policy(), ["a@x.example"], window(-1, 2), "window_too_early"),
        (Policy(), ["a@x.example"], window(-0.003, 1), None),  # within the 5-minute tolerance
        (Policy(max_lookback_days=7), ["a@x.example"], window(-6, 7), None),
        (Policy(max_lookback_days=7), ["a@x.example"], window(-8, 7), "window_too_early"),
        (Policy(max_lookahead_days=30), ["a@x.example"], window(20, 10), None),
        (Policy(max_lookahead_days=30), ["a@x.example"], window(25, 10), "window_too_late"),
        (Policy(max_window_days=7), ["a@x.example"], window(1, 8), "window_too_long"),
        (Policy(), ["a@x.example"], window(1, 31), "window_too_long"),  # the global 30
        (Policy(max_window_days=90), ["a@x.example"], window(1, 31), "window_too_long"),
        (
            Policy(max_schedules=2),
            ["a@x.example", "b@x.example", "c@x.example"],
            window(1, 1),
            "too_many_schedules",
        ),
        (
            Policy(max_schedules=2),
            ["a@x.example", "A@X.example", "b@x.example"],
            window(1, 1),
            None,
        ),  # the same person twice is one schedule
    ],
)
def test_request_limits(
    policy: Policy, schedules: list[str], win: Window, code: str | None
) -> None:
    """Each consumer limit refuses with its own code; a consumer can only be stricter."""

    def check() -> None:
        bounds = Bounds.of(policy, max_window_days=30, max_schedules=10, max_cost=10**9)
        check_request(bounds, Query(schedules=tuple(schedules), window=win), now=NOW)

    if code is None:
        check()
    else:
        with pytest.raises(BadRequest) as raised:
            check()
        assert raised.value.code == code


# --- end to end: exactly what each consumer sees ------------------------------------------

ADDRESS = ONE_ADDRESS
DAY_QUERY = {"start": "2026-03-16T00:00:00Z", "end": "2026-03-17T00:00:00Z"}


def graph_dt(hour: int, minute: int = 0) -> dict[str, str]:
    """A Graph dateTimeTimeZone on 2026-03-16, in Graph's own spelling."""
    return {"dateTime": f"2026-03-16T{hour:02d}:{minute:02d}:00.0000000", "timeZone": "UTC"}


KNOWN_DAY = {
    "value": [
        {
            "scheduleId": ADDRESS,
            "availabilityView": "0022",
            "workingHours": {"timeZone": {"name": "CANARY-wh"}},
            "scheduleItems": [
                {
                    "status": "busy",
                    "subject": "CANARY-a",
                    "start": graph_dt(9, 10),
                    "end": graph_dt(9, 40),
                },
                {
                    "status": "tentative",
                    "location": "CANARY-b",
                    "start": graph_dt(9, 40),
                    "end": graph_dt(10, 15),
                },
                {"status": "free", "start": graph_dt(11), "end": graph_dt(11, 30)},
                {"status": "oof", "isPrivate": True, "start": graph_dt(13), "end": graph_dt(14)},
                {"status": "workingElsewhere", "start": graph_dt(15, 5), "end": graph_dt(15, 50)},
            ],
        }
    ]
}


def policy_settings(
    mock: RunningMock, **policies: dict[str, Any]
) -> tuple[Settings, dict[str, str]]:
    """The test settings plus one consumer per named policy; returns settings and their keys."""
    base = proxy_settings(mock)
    keys: dict[str, str] = {}
    consumers = list(base.consumers)
    for name, fields in policies.items():
        key, digest = new_key()
        keys[name] = key
        consumers.append(
            ConsumerSettings(
                name=name, key_sha256=digest, allow=(f"*@{MOCK_DOMAIN}",), policy=Policy(**fields)
            )
        )
    return replace(base, consumers=tuple(consumers)), keys


async def seen(client: TestClient[Any, Any], key: str, address: str = ADDRESS) -> list[list[str]]:
    """The items a consumer gets for the address on 2026-03-16, as [status, start, end]."""
    async with client.post(
        "/v1/availability", json={"schedules": [address], **DAY_QUERY}, headers=auth(key)
    ) as resp:
        text = await resp.text()
        assert resp.status == 200, text
    assert_no_leak(text)
    entry = json.loads(text)["schedules"][0]
    assert entry["error"] is None
    return [[i["status"], i["start"][11:16], i["end"][11:16]] for i in entry["items"]]


POLICIES: dict[str, tuple[dict[str, Any], list[list[str]]]] = {
    "exact": (
        {},
        [
            ["busy", "09:10", "09:40"],
            ["tentative", "09:40", "10:15"],
            ["free", "11:00", "11:30"],
            ["oof", "13:00", "14:00"],
            ["workingElsewhere", "15:05", "15:50"],
        ],
    ),
    "grid30": (
        {"granularity_minutes": 30},
        [
            ["busy", "09:00", "10:00"],
            ["tentative", "09:30", "10:30"],
            ["free", "11:00", "11:30"],
            ["oof", "13:00", "14:00"],
            ["workingElsewhere", "15:00", "16:00"],
        ],
    ),
    "busy": (
        {"detail": "busy"},
        [["busy", "09:10", "10:15"], ["busy", "13:00", "14:00"]],
    ),
    "busy60": (
        {"detail": "busy", "granularity_minutes": 60},
        [["busy", "09:00", "11:00"], ["busy", "13:00", "14:00"]],
    ),
    "busyonly": (
        {"detail": "busy", "busy_statuses": ("busy",)},
        [["busy", "09:10", "09:40"]],
    ),
}


@pytest.mark.parametrize("name", sorted(POLICIES))
async def test_each_knob_shows_exactly(
    make_proxy: ProxyFactory, mock_graph: RunningMock, name: str
) -> None:
    """A known Graph day, served by the mock, as each policy's consumer sees it."""
    fields, expected = POLICIES[name]
    settings, keys = policy_settings(mock_graph, **{name: fields})
    client = await make_proxy(mock_graph, settings=settings)
    mock_graph.graph.add_fault(Fault(kind="body", body=KNOWN_DAY, count=None))
    assert await seen(client, keys[name]) == expected


async def test_two_consumers_same_person_different_views(
    make_proxy: ProxyFactory, mock_graph: RunningMock
) -> None:
    """Two consumers of one proxy asking for the same person get their own policy's view,
    from one upstream fetch: the cache holds the minimized data, the policy shapes each answer.
    """
    settings, keys = policy_settings(
        mock_graph,
        exact={},
        coarse={"detail": "busy", "granularity_minutes": 60},
    )
    client = await make_proxy(mock_graph, settings=settings)
    mock_graph.graph.add_fault(Fault(kind="body", body=KNOWN_DAY, count=None))
    exact = await seen(client, keys["exact"])
    coarse = await seen(client, keys["coarse"])
    assert exact == POLICIES["exact"][1]
    assert coarse == POLICIES["busy60"][1]
    assert mock_graph.graph.stats()["calls"]["getSchedule"] == 1


async def test_grid_window_end_does_not_reveal_a_start(
    make_proxy: ProxyFactory, mock_graph: RunningMock
) -> None:
    """Sliding the window's end across 09:10 shows the same 09:00 block: no edge leaks."""
    settings, keys = policy_settings(mock_graph, grid30={"granularity_minutes": 30})
    client = await make_proxy(mock_graph, settings=settings)
    answers = []
    for end in ("09:05", "09:15"):
        mock_graph.graph.add_fault(Fault(kind="body", body=KNOWN_DAY, count=1))
        body = {
            "schedules": [ADDRESS],
            "start": "2026-03-16T08:00:00Z",
            "end": f"2026-03-16T{end}:00Z",
        }
        async with client.post("/v1/availability", json=body, headers=auth(keys["grid30"])) as resp:
            assert resp.status == 200
            answers.append(json.loads(await resp.text())["schedules"][0]["items"])
    # 09:05: the 09:00-10:00 block clipped to the window; the meeting starts at 09:10.
    assert answers[0] == [
        {"status": "busy", "start": "2026-03-16T09:00:00Z", "end": "2026-03-16T09:05:00Z"}
    ]
    assert answers[1] == [
        {"status": "busy", "start": "2026-03-16T09:00:00Z", "end": "2026-03-16T09:15:00Z"}
    ]


@pytest.mark.parametrize(
    ("fields", "query", "code"),
    [
        ({}, {"start": "2025-12-31T00:00:00Z", "end": "2026-01-02T00:00:00Z"}, "window_too_early"),
        (
            {"max_lookback_days": 2},
            {"start": "2025-12-31T00:00:00Z", "end": "2026-01-02T00:00:00Z"},
            None,
        ),
        (
            {"max_lookahead_days": 30},
            {"start": "2026-01-30T00:00:00Z", "end": "2026-02-01T00:00:00Z"},
            "window_too_late",
        ),
        (
            {"max_window_days": 1},
            {"start": "2026-01-10T00:00:00Z", "end": "2026-01-12T00:00:00Z"},
            "window_too_long",
        ),
    ],
)
async def test_window_limits_end_to_end(
    make_proxy: ProxyFactory,
    mock_graph: RunningMock,
    fields: dict[str, Any],
    query: dict[str, str],
    code: str | None,
) -> None:
    """Window limits answer 400 problem+json with their code, before any Graph call."""
    settings, keys = policy_settings(mock_graph, limited=fields)
    client = await make_proxy(mock_graph, settings=settings, wall_clock=FixedWallClock(TEST_NOW))
    async with client.post(
        "/v1/availability", json={"schedules": [ADDRESS], **query}, headers=auth(keys["limited"])
    ) as resp:
        body = json.loads(await resp.text())
    if code is None:
        assert resp.status == 200, body
        return
    assert resp.status == 400
    assert resp.content_type == "application/problem+json"
    assert body["code"] == code
    assert mock_graph.graph.stats()["calls"]["getSchedule"] == 0


async def test_max_schedules_per_consumer(
    make_proxy: ProxyFactory, mock_graph: RunningMock
) -> None:
    """A consumer limited to 2 schedules gets 400 too_many_schedules for 3 people."""
    settings, keys = policy_settings(mock_graph, small={"max_schedules": 2})
    client = await make_proxy(mock_graph, settings=settings)
    people = mock_graph.graph.organisation.addresses()[:3]
    async with client.post(
        "/v1/availability",
        json={"schedules": people, "start": "2026-01-10T00:00:00Z", "end": "2026-01-11T00:00:00Z"},
        headers=auth(keys["small"]),
    ) as resp:
        assert resp.status == 400
        assert (await resp.json(content_type=None))["code"] == "too_many_schedules"


async def test_feed_default_window_starts_now_for_a_key_without_look_back(
    aiohttp_server: Any, aiohttp_client: Any, mock_graph: RunningMock
) -> None:
    """A feed without start/end reads from today 00:00 UTC, but a key that may not look back
    (the default) gets it from now: 200, not window_too_early, and nothing before now."""
    from tests.support.feeds import FEED_TOKEN, ICS, parse_feed, with_feed

    now = datetime(2026, 3, 16, 10, 30, tzinfo=UTC)
    client = await start_proxy(
        aiohttp_client, with_feed(mock_graph), wall_clock=FixedWallClock(now)
    )
    async with client.get(ICS, params={"token": FEED_TOKEN}) as resp:
        body = await resp.read()
        assert resp.status == 200, body
    component, periods = parse_feed(body)
    assert component["DTSTART"].dt == now
    assert all(start >= now for _, start, _ in periods)
