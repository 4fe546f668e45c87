"""Google Calendar freeBusy dialect: POST /calendar/v3/freeBusy, with Google's error shape."""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Mapping
from datetime import datetime, tzinfo
from typing import Any

from aiohttp import web

from proxy.core.errors import BadRequest, Code, ProblemError
from proxy.core.intervals import busy_periods
from proxy.core.model import ErrorCode, Query, ScheduleResult, Status
from proxy.core.timefmt import format_utc
from proxy.core.zones import resolve_zone
from proxy.web.dialects.common import (
    BEARER_CHALLENGE,
    Parts,
    compact,
    join,
    join_paced,
    read_json_object,
)
from proxy.web.dialects.query import parse_instant, schedules_of, window_of
from proxy.web.envelope import Envelope
from proxy.web.keys import AVAILABILITY, CONSUMERS

log = logging.getLogger(__name__)

# Google's own cap on calendars per freeBusy query.
MAX_ITEMS = 50
_FIELDS = frozenset(
    {"timeMin", "timeMax", "timeZone", "items", "groupExpansionMax", "calendarExpansionMax"}
)
# Google's standard query parameters, accepted and ignored; anything else is reported.
# (access_token and key are not among them: credentials do not belong in a URL.)
_STANDARD_PARAMETERS = frozenset({"alt", "fields", "prettyPrint", "quotaUser", "$.xgafv"})
# Per-calendar error reasons, as Google spells them.
_REASONS = {
    ErrorCode.NOT_FOUND: "notFound",
    ErrorCode.THROTTLED: "rateLimitExceeded",
    # Google answers notFound for calendars the caller cannot see.
    ErrorCode.NOT_CONNECTED: "notFound",
    ErrorCode.NEEDS_CONSENT: "notFound",
}
# Whole-request errors: (HTTP status, reason, RPC status) per our error code.
_HTTP_REASONS = {
    400: ("badRequest", "INVALID_ARGUMENT"),
    401: ("authError", "UNAUTHENTICATED"),
    403: ("forbidden", "PERMISSION_DENIED"),
    404: ("notFound", "NOT_FOUND"),
    405: ("httpMethodNotAllowed", "UNIMPLEMENTED"),
    413: ("uploadTooLarge", "INVALID_ARGUMENT"),
    414: ("badRequest", "INVALID_ARGUMENT"),
    415: ("badContent", "INVALID_ARGUMENT"),
    429: ("rateLimitExceeded", "RESOURCE_EXHAUSTED"),
    500: ("internalError", "INTERNAL"),
    502: ("backendError", "UNAVAILABLE"),
    503: ("backendError", "UNAVAILABLE"),
    504: ("backendError", "DEADLINE_EXCEEDED"),
}
_REASON_BY_CODE = {
    Code.WINDOW_TOO_LONG: "timeRangeTooLong",
    Code.INVALID_WINDOW: "timeRangeEmpty",
    Code.TOO_MANY_SCHEDULES: "tooManyCalendarsRequestedForFreeBusy",
    Code.INVALID_TIME: "invalid",
    Code.INVALID_TIME_ZONE: "invalid",
}


def parse_freebusy(raw: Mapping[str, Any]) -> tuple[Query, tzinfo | None]:
    """Validate a freeBusy request body into a query and the response zone (None = UTC)."""
    unknown = set(raw) - _FIELDS
    if unknown:
        raise BadRequest(f"unknown field: {sorted(unknown)[0]}", code=Code.UNKNOWN_FIELD)
    items = raw.get("items")
    if not isinstance(items, list) or not items:
        raise BadRequest("items must be a non-empty list of {id}", code=Code.INVALID_SCHEDULES)
    if len(items) > MAX_ITEMS:
        raise BadRequest(f"at most {MAX_ITEMS} calendars per request", code=Code.TOO_MANY_SCHEDULES)
    ids = []
    for item in items:
        if not isinstance(item, Mapping) or set(item) != {"id"}:
            raise BadRequest("every item must be an object {id}", code=Code.INVALID_SCHEDULES)
        ids.append(item["id"])
    for name in ("groupExpansionMax", "calendarExpansionMax"):
        value = raw.get(name, 1)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ITEMS:
            raise BadRequest(f"{name} must be an integer from 1 to {MAX_ITEMS}")
    zone: tzinfo | None = None
    if "timeZone" in raw:
        zone_name = raw["timeZone"]
        zone = resolve_zone(zone_name) if isinstance(zone_name, str) else None
        if zone is None:
            raise BadRequest("timeZone must be an IANA time zone name", code=Code.INVALID_TIME_ZONE)
    schedules = schedules_of(ids)
    start = parse_instant(raw.get("timeMin"), "timeMin")
    end = parse_instant(raw.get("timeMax"), "timeMax")
    return Query(schedules=schedules, window=window_of(start, end)), zone


def render_freebusy(
    query: Query,
    results: Mapping[str, ScheduleResult],
    *,
    busy_statuses: Collection[Status],
    zone: tzinfo | None,
) -> bytes:
    """Google's calendar#freeBusy: merged busy periods per calendar id, or its errors."""
    return join(freebusy_parts(query, results, busy_statuses=busy_statuses, zone=zone))


def freebusy_parts(
    query: Query,
    results: Mapping[str, ScheduleResult],
    *,
    busy_statuses: Collection[Status],
    zone: tzinfo | None,
) -> Parts:
    """render_freebusy() piece by piece; each distinct address is rendered once, and an id
    asked twice in the same spelling is one member of ``calendars``."""
    yield b'{"kind":"calendar#freeBusy","timeMin":' + compact(format_utc(query.window.start)), 0
    yield b',"timeMax":' + compact(format_utc(query.window.end)) + b',"calendars":{', 0
    rendered: dict[str, bytes] = {}
    written: set[str] = set()
    for address in query.schedules:
        if address in written:
            continue
        key = address.casefold()
        body = rendered.get(key)
        units = 0
        if body is None:
            result = results[key]
            body = rendered[key] = compact(_calendar(result, busy_statuses, zone))
            units = len(result.items) + 1
        yield (b"," if written else b"") + compact(address) + b":" + body, units
        written.add(address)
    yield b"}}", 0


def _calendar(
    result: ScheduleResult, busy_statuses: Collection[Status], zone: tzinfo | None
) -> dict[str, Any]:
    """One calendar of the answer: its busy periods, or its error."""
    if result.error is not None:
        reason = _REASONS.get(result.error, "backendError")
        return {"errors": [{"domain": "global", "reason": reason}], "busy": []}
    return {
        "busy": [
            {"start": _format(start, zone), "end": _format(end, zone)}
            for start, end in busy_periods(result.items, busy_statuses)
        ]
    }


def _format(instant: datetime, zone: tzinfo | None) -> str:
    if zone is None:
        return format_utc(instant)
    return instant.astimezone(zone).isoformat()


async def freebusy(request: web.Request) -> web.Response:
    """POST /calendar/v3/freeBusy: Google's freeBusy.query answered from minimized data."""
    consumer = request.config_dict[CONSUMERS].authenticate(request.headers.get("Authorization"))
    for name in request.query:
        if name not in _STANDARD_PARAMETERS:
            raise BadRequest(f"unknown parameter: {name}", code=Code.UNKNOWN_FIELD)
    if request.query.get("alt", "json") != "json":
        raise BadRequest("only alt=json is supported", code=Code.INVALID_REQUEST)
    query, zone = parse_freebusy(await read_json_object(request))
    results = await request.config_dict[AVAILABILITY].lookup(consumer, query)
    statuses = consumer.policy.busy_statuses
    body = await join_paced(freebusy_parts(query, results, busy_statuses=statuses, zone=zone))
    return web.Response(
        body=body, content_type="application/json", headers={"Cache-Control": "no-store"}
    )


def google_shape(request: web.Request, error: ProblemError) -> web.Response:
    """Google's error document for an error, every field written by us."""
    status = 429 if error.code is Code.THROTTLED else error.status
    reason = _REASON_BY_CODE.get(error.code) or _HTTP_REASONS.get(status, ("backendError",))[0]
    _, rpc_status = _HTTP_REASONS.get(status, ("backendError", "UNKNOWN"))
    headers = error.extra_headers()  # e.g. Retry-After, Allow
    if status == 401:
        headers["WWW-Authenticate"] = BEARER_CHALLENGE
    message = error.detail
    body = {
        "error": {
            "code": status,
            "message": message,
            "errors": [{"domain": _domain(reason), "reason": reason, "message": message}],
            "status": rpc_status,
        }
    }
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        content_type="application/json",
        headers=headers or None,
    )


def _domain(reason: str) -> str:
    return "usageLimits" if reason == "rateLimitExceeded" else "global"


def google_app(envelope: Envelope) -> web.Application:
    """The /calendar/v3 sub-application, with its own error shape."""
    app = web.Application()
    envelope.add(app.router, "POST", "/freeBusy", freebusy, shape=google_shape)
    envelope.add_fallback(app.router, shape=google_shape)
    return app
