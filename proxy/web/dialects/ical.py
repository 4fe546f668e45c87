"""iCalendar dialect: GET /v1/schedules/{address}/freebusy.ics, one VFREEBUSY in UTC."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Collection
from datetime import UTC, datetime, timedelta

from aiohttp import web
from icalendar import Calendar, FreeBusy, vCalAddress, vPeriod

from proxy.access.consumers import Consumer
from proxy.config.schema import IcalSettings, Settings
from proxy.core.errors import BadRequest, Code, ProblemError
from proxy.core.intervals import busy_periods
from proxy.core.model import ErrorCode, Query, ScheduleResult, Status, Window
from proxy.core.policy import clamp_to_lookback
from proxy.core.timefmt import format_utc
from proxy.sources.graph import BUDGET_RETRY_AFTER_S
from proxy.web.dialects.query import parse_instant, schedules_of, window_of
from proxy.web.keys import AVAILABILITY, CONSUMERS, FEEDS, SETTINGS, WALL_CLOCK

ICAL_CONTENT_TYPE = "text/calendar"
PRODID = "-//freebusy-proxy//free-busy feed//EN"
# The order periods are written in, and their FBTYPE (RFC 5545 §3.2.9).
_FBTYPE = {
    Status.BUSY: "BUSY",
    Status.UNKNOWN: "BUSY",
    Status.FREE: "BUSY",  # only when a consumer explicitly counts free as busy
    Status.TENTATIVE: "BUSY-TENTATIVE",
    Status.OOF: "BUSY-UNAVAILABLE",
}
_FBTYPE_ORDER = ("BUSY", "BUSY-TENTATIVE", "BUSY-UNAVAILABLE")
_PARAMETERS = frozenset({"start", "end", "token"})
_UID_NAMESPACE = uuid.UUID("6f1b5c0e-3d0a-4c55-9a57-0b7f3b8f6a11")

Period = tuple[str, datetime, datetime]


def fbtype(status: Status, *, working_elsewhere: str) -> str:
    """The FBTYPE a status is written with."""
    if status is Status.WORKING_ELSEWHERE:
        return working_elsewhere
    return _FBTYPE[status]


def feed_periods(
    result: ScheduleResult, *, busy_statuses: Collection[Status], working_elsewhere: str
) -> list[Period]:
    """(FBTYPE, start, end) for every counted item; periods of one FBTYPE merged, sorted."""
    periods: list[Period] = []
    for kind in _FBTYPE_ORDER:
        statuses = {
            status
            for status in busy_statuses
            if fbtype(status, working_elsewhere=working_elsewhere) == kind
        }
        periods.extend((kind, start, end) for start, end in busy_periods(result.items, statuses))
    return sorted(periods, key=lambda period: (period[1], period[2], period[0]))


def render_ical(address: str, window: Window, periods: list[Period], *, stamp: datetime) -> bytes:
    """A VCALENDAR with one VFREEBUSY for the address: UTC window, FBTYPE on every period."""
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("method", "PUBLISH")
    freebusy = FreeBusy()
    # Stable per address and window, so a client sees the same object on every refresh.
    uid = uuid.uuid5(_UID_NAMESPACE, f"{address.casefold()} {window.start} {window.end}")
    freebusy.add("uid", f"{uid}@freebusy-proxy")
    freebusy.add("dtstamp", stamp.astimezone(UTC))
    freebusy.add("dtstart", window.start)
    freebusy.add("dtend", window.end)
    freebusy.add("organizer", vCalAddress(f"mailto:{address}"))
    freebusy.add("attendee", vCalAddress(f"mailto:{address}"))
    for kind, start, end in periods:
        freebusy.add("freebusy", vPeriod((start, end)), parameters={"FBTYPE": kind})
    calendar.add_component(freebusy)
    body: bytes = calendar.to_ical()
    return body


def feed_etag(address: str, window: Window, periods: list[Period]) -> str:
    """A strong ETag over exactly what the feed says (not DTSTAMP)."""
    digest = hashlib.sha256()
    digest.update(f"{address}\n{format_utc(window.start)}\n{format_utc(window.end)}\n".encode())
    for kind, start, end in periods:
        digest.update(f"{kind} {format_utc(start)} {format_utc(end)}\n".encode())
    return f'"{digest.hexdigest()[:32]}"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """True when an If-None-Match header names this ETag (weak comparison, as RFC 9110 says)."""
    if if_none_match is None:
        return False
    if if_none_match.strip() == "*":
        return True
    tags = (tag.strip().removeprefix("W/") for tag in if_none_match.split(","))
    return etag in tags


def default_window(settings: IcalSettings, *, now: datetime) -> Window:
    """The window of a feed request without start/end: ``default_days`` from today 00:00 UTC."""
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return Window(start=today, end=today + timedelta(days=settings.default_days))


async def freebusy_ics(request: web.Request) -> web.Response:
    """GET the address's free/busy as iCalendar, by API key or by the address's feed token."""
    address = request.match_info["address"]
    params = request.query
    for name in params:
        if name not in _PARAMETERS:
            raise BadRequest(f"unknown parameter: {name}", code=Code.UNKNOWN_FIELD)
        if len(params.getall(name)) > 1:
            raise BadRequest(f"{name} is given more than once", code=Code.INVALID_REQUEST)
    consumer, bucket = _authenticate(request, address)
    settings = request.app[SETTINGS]
    now = request.app[WALL_CLOCK].now()
    query = _query(address, params.get("start"), params.get("end"), settings, consumer, now=now)
    results = await request.app[AVAILABILITY].lookup(consumer, query, bucket=bucket)
    result = results[address.casefold()]
    if result.error is not None:
        raise _feed_error(result.error)
    periods = feed_periods(
        result,
        busy_statuses=consumer.policy.busy_statuses,
        working_elsewhere=settings.ical.working_elsewhere,
    )
    etag = feed_etag(address, query.window, periods)
    # Clients may keep a copy but must ask again; the ETag makes asking again cheap.
    headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
    if etag_matches(request.headers.get("If-None-Match"), etag):
        return web.Response(status=304, headers=headers)
    body = render_ical(address, query.window, periods, stamp=now)
    return web.Response(body=body, content_type=ICAL_CONTENT_TYPE, charset="utf-8", headers=headers)


def _authenticate(request: web.Request, address: str) -> tuple[Consumer, str | None]:
    """The consumer asking, and the rate bucket to charge: a feed's own, or None (the key's)."""
    token = request.query.get("token")
    if token is None:
        return request.app[CONSUMERS].authenticate(request.headers.get("Authorization")), None
    if "Authorization" in request.headers:
        raise BadRequest(
            "send either a feed token or an API key, not both", code=Code.INVALID_REQUEST
        )
    feed = request.app[FEEDS].authenticate(token, address)
    # Its own bucket: a calendar app polling the feed cannot spend the app's key.
    return feed.consumer, f"feed\x00{feed.name}"


def _query(
    address: str,
    start: str | None,
    end: str | None,
    settings: Settings,
    consumer: Consumer,
    *,
    now: datetime,
) -> Query:
    """The feed's query: the window given, or the default one when neither bound is."""
    schedules = schedules_of([address])
    if start is None and end is None:
        # From today 00:00 UTC, but not before the key may look back (0 days: from now).
        window = clamp_to_lookback(consumer.policy, default_window(settings.ical, now=now), now=now)
    else:
        window = window_of(parse_instant(start, "start"), parse_instant(end, "end"))
    return Query(schedules=schedules, window=window)


def _feed_error(code: ErrorCode) -> ProblemError:
    """The whole-feed error for a per-schedule failure (a feed has only one schedule)."""
    if code is ErrorCode.NOT_FOUND:
        return ProblemError(
            "Microsoft Graph does not know this address", code=Code(code.value), status=404
        )
    if code is ErrorCode.UPSTREAM_TIMEOUT:
        return ProblemError(
            "Microsoft Graph did not answer in time", code=Code(code.value), status=504
        )
    if code is ErrorCode.THROTTLED:
        # The exact wait is not kept per schedule; our per-mailbox budget counts in minutes.
        return ProblemError(
            "Microsoft Graph throttled this address",
            code=Code.THROTTLED,
            status=502,
            headers={"Retry-After": str(int(BUDGET_RETRY_AFTER_S))},
        )
    detail = {
        ErrorCode.NOT_CONNECTED: "no connection covers this address",
        ErrorCode.NEEDS_CONSENT: "the connection covering this address must be consented again",
    }.get(code, "Microsoft Graph failed for this address")
    return ProblemError(detail, code=Code(code.value), status=502)
