"""Per-consumer privacy policy: how much of a minimized schedule one app may see, and ask for.

Pure functions over frozen values. The source (and any cache in front of it) stays
policy-neutral; the availability service applies a consumer's policy to every response.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from msgspec import Meta
from msgspec.structs import replace

from proxy.core.errors import BadRequest, Code
from proxy.core.intervals import Span, merge, merge_spans
from proxy.core.model import BusyItem, Query, ScheduleResult, Status, Window

Detail = Literal["status", "busy", "slots"]

# "Nothing before now" allows for clock skew and for a request built a moment ago.
LOOKBACK_TOLERANCE = timedelta(minutes=5)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DEFAULT_BUSY_STATUSES = frozenset({Status.BUSY, Status.OOF, Status.TENTATIVE, Status.UNKNOWN})
# What one getSchedule call takes: 20 schedules, a window shorter than 62 days.
GRAPH_SCHEDULES_PER_CALL = 20
GRAPH_DAYS_PER_CALL = 61
# An availabilityView day at Graph's default 30-minute interval: the unit a view is costed in.
VIEW_DIGITS_PER_DAY = 48
_TICK = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    """What one consumer sees and may ask for; the ranges are what a configuration may say."""

    # "status": items as Graph gives them; "busy": busy time only; "slots": no items at all,
    # the key may only ask when a group is free (POST /v1/slots).
    detail: Detail = "status"
    # 0: exact times; otherwise a divisor of 1440, so the grid falls on the same UTC times daily.
    granularity_minutes: Annotated[int, Meta(ge=0, le=1440)] = 0
    busy_statuses: frozenset[Status] = DEFAULT_BUSY_STATUSES
    # The consumer's own limits, stricter than the global ones; None: the global ones.
    max_window_days: Annotated[int, Meta(ge=1)] | None = None
    max_schedules: Annotated[int, Meta(ge=1)] | None = None
    max_lookback_days: Annotated[int, Meta(ge=0, le=3660)] = 0
    max_lookahead_days: Annotated[int, Meta(ge=1, le=3660)] = 365
    # 0: no limit.
    rate_per_minute: Annotated[int, Meta(ge=0, le=100_000)] = 600


DEFAULT_POLICY = Policy()


@dataclass(frozen=True, slots=True, kw_only=True)
class Bounds:
    """What one consumer may ask, under the global limits, ready to compare with a question."""

    max_entries: int
    max_distinct: int
    max_cost: int
    window_days: int
    lookback_days: int
    lookahead_days: int
    max_window: timedelta
    # "Now" minus this is the earliest start; plus lookahead, the latest end.
    lookback: timedelta
    lookahead: timedelta

    @classmethod
    def of(
        cls, policy: Policy, *, max_window_days: int, max_schedules: int, max_cost: int
    ) -> Bounds:
        """The bounds of ``policy``; a consumer's own limits can only be stricter."""
        days = min(max_window_days, policy.max_window_days or max_window_days)
        return cls(
            max_entries=max_schedules,
            max_distinct=min(max_schedules, policy.max_schedules or max_schedules),
            max_cost=max_cost,
            window_days=days,
            lookback_days=policy.max_lookback_days,
            lookahead_days=policy.max_lookahead_days,
            max_window=timedelta(days=days),
            lookback=timedelta(days=policy.max_lookback_days) + LOOKBACK_TOLERANCE,
            lookahead=timedelta(days=policy.max_lookahead_days),
        )


def utc_days(window: Window) -> int:
    """The UTC days a window touches (what the cache holds and assembles for it)."""
    return (window.end - _TICK).toordinal() - window.start.toordinal() + 1


def request_cost(query: Query, fetched: Window, *, view_minutes: int | None = None) -> int:
    """What answering ``query`` costs, in mailbox-days, with ``fetched`` its fetch window.

    Each distinct address times the UTC days fetched: what is fetched, held, assembled and
    shaped (duplicates are computed once). An availabilityView (the Graph drop-in's
    ``view_minutes``) is a string rendered into every entry, duplicates included: such a
    request costs at least its entries times the view's length in days of 48 digits.
    """
    cost = len(query.unique) * utc_days(fetched)
    if view_minutes is not None:
        digits = math.ceil(query.window.duration / timedelta(minutes=view_minutes))
        cost = max(cost, len(query.schedules) * math.ceil(digits / VIEW_DIGITS_PER_DAY))
    return cost


def graph_calls(query: Query, fetched: Window) -> int:
    """The getSchedule calls answering ``query`` could need (nothing cached): the unit a
    consumer's rate is charged in."""
    chunks = math.ceil(len(query.unique) / GRAPH_SCHEDULES_PER_CALL)
    return chunks * math.ceil(utc_days(fetched) / GRAPH_DAYS_PER_CALL)


def check_request(bounds: Bounds, query: Query, *, now: datetime, cost: int = 0) -> None:
    """Raise BadRequest unless the question fits the consumer's (and the global) limits.

    The global count is of entries as sent (each is answered); the consumer's of distinct
    addresses (each is fetched). ``cost``: what request_cost() says answering it costs.
    """
    if len(query.schedules) > bounds.max_entries or len(query.unique) > bounds.max_distinct:
        raise BadRequest(
            f"at most {bounds.max_distinct} schedules per request", code=Code.TOO_MANY_SCHEDULES
        )
    window = query.window
    if window.end - window.start > bounds.max_window:
        raise BadRequest(
            f"the window may span at most {bounds.window_days} days", code=Code.WINDOW_TOO_LONG
        )
    check_reach(bounds, window, now=now)
    if cost > bounds.max_cost:
        raise BadRequest(
            f"this request would cost {cost} mailbox-days; at most {bounds.max_cost} may be "
            "asked at once (fewer addresses, a shorter window or a coarser view)",
            code=Code.REQUEST_TOO_COSTLY,
        )


def check_reach(bounds: Bounds, window: Window, *, now: datetime) -> None:
    """Raise BadRequest unless ``window`` lies within how far back and ahead of ``now`` the
    consumer may look: the part of check_request() that changes with the time."""
    if window.start < now - bounds.lookback:
        what = (
            "the past"
            if bounds.lookback_days == 0
            else f"more than {bounds.lookback_days} days back"
        )
        raise BadRequest(f"this API key may not look into {what}", code=Code.WINDOW_TOO_EARLY)
    if window.end > now + bounds.lookahead:
        raise BadRequest(
            f"this API key may look at most {bounds.lookahead_days} days ahead",
            code=Code.WINDOW_TOO_LATE,
        )


def clamp_to_lookback(policy: Policy, window: Window, *, now: datetime) -> Window:
    """A window the consumer did not choose (a feed's default "today 00:00 onwards") moved to
    start no earlier than the consumer may look back; left alone when nothing would remain."""
    earliest = now - timedelta(days=policy.max_lookback_days)
    if window.start >= earliest or earliest >= window.end:
        return window
    return Window(start=earliest, end=window.end)


def fetch_window(policy: Policy, window: Window) -> Window:
    """The window to fetch so that widened items are exact: the request's, widened to the grid.

    Without this a consumer could slide the window's end minute by minute and see exactly
    when a meeting starts (it appears once the window reaches it).
    """
    grid = _grid(policy)
    if grid is None:
        return window
    return Window(start=_floor(window.start, grid), end=_ceil(window.end, grid))


def apply_policy(result: ScheduleResult, policy: Policy, window: Window) -> ScheduleResult:
    """What the consumer sees of one schedule fetched over ``fetch_window(policy, window)``.

    ``busy`` keeps only items whose status counts as busy, as ``busy``, merged when they
    overlap or touch. A granularity widens every item outward to the UTC grid (never
    narrows). Items end clipped to the requested window, sorted and de-duplicated.
    Error results pass unchanged.
    """
    if result.error is not None:
        return result
    if (
        policy.detail == "status"
        and policy.granularity_minutes == 0
        and _shaped(result.items, window)
    ):
        # What the cache answers already is exactly this: nothing to rebuild.
        return result
    items: list[BusyItem] = list(result.items)
    if policy.detail == "busy":
        items = [
            BusyItem(start=item.start, end=item.end, status=Status.BUSY)
            for item in items
            if item.status in policy.busy_statuses
        ]
    grid = _grid(policy)
    if grid is not None:
        items = [
            BusyItem(start=_floor(item.start, grid), end=_ceil(item.end, grid), status=item.status)
            for item in items
        ]
    clipped: set[BusyItem] = set()
    for item in items:
        start, end = max(item.start, window.start), min(item.end, window.end)
        if start < end:
            clipped.add(BusyItem(start=start, end=end, status=item.status))
    ordered = sorted(clipped)
    if policy.detail == "busy":
        ordered = merge(ordered)
    # replace(), not a new result: flags such as ``stale`` are the source's to set.
    return replace(result, items=tuple(ordered))


_END = operator.attrgetter("end")


def _shaped(items: tuple[BusyItem, ...], window: Window) -> bool:
    """True when ``items`` are already inside ``window``, sorted and distinct."""
    if not items:
        return True
    # Strictly increasing: sorted, and no two equal.
    return (
        window.start <= items[0].start
        and max(map(_END, items)) <= window.end
        and all(map(operator.lt, items, items[1:]))
    )


def blocking_spans(result: ScheduleResult, policy: Policy, window: Window) -> tuple[Span, ...]:
    """What of one schedule, fetched over ``fetch_window(policy, window)``, blocks a meeting.

    The items whose status counts as busy, widened outward to the policy's grid (as every
    view widens them), clipped to ``window``, overlapping and touching ones merged. An error
    result has none: the caller decides what an unknown schedule means.
    """
    grid = _grid(policy)
    statuses = policy.busy_statuses
    low, high = window.start, window.end
    spans: list[Span] = []
    for item in result.items:
        if item.status not in statuses:
            continue
        start, end = item.start, item.end
        if grid is not None:
            start, end = _floor(start, grid), _ceil(end, grid)
        start, end = max(start, low), min(end, high)
        if start < end:
            spans.append((start, end))
    return tuple(merge_spans(spans))


def _grid(policy: Policy) -> timedelta | None:
    minutes = policy.granularity_minutes
    return timedelta(minutes=minutes) if minutes > 0 else None


def _floor(instant: datetime, grid: timedelta) -> datetime:
    """The grid line at or before ``instant``; the grid starts at the Unix epoch (UTC midnight)."""
    return instant - (instant - _EPOCH) % grid


def _ceil(instant: datetime, grid: timedelta) -> datetime:
    """The grid line at or after ``instant``."""
    floor = _floor(instant, grid)
    return floor if floor == instant else floor + grid
