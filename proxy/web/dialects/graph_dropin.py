"""Microsoft Graph drop-in: getSchedule answered from minimized data, in Graph's shapes.

Routes (under /v1.0): ``POST /users/{id}/calendar/getSchedule`` and, for an API key bound to
one person, ``POST /me/calendar/getSchedule``. The ``{id}`` in the path does not widen or
narrow anything: what may be queried is decided by the consumer's allowlist alone.
"""

from __future__ import annotations

import json
import logging
import math
import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from aiohttp import web

from proxy.access.consumers import Consumer
from proxy.core.errors import BadRequest, Code, ProblemError
from proxy.core.minimize import parse_graph_datetime
from proxy.core.model import BusyItem, ErrorCode, Query, ScheduleResult, Status, Window
from proxy.core.timefmt import format_graph_local, format_utc
from proxy.core.zones import resolve_zone
from proxy.web.dialects.common import (
    BEARER_CHALLENGE,
    Parts,
    compact,
    join,
    join_paced,
    read_json_object,
    tail,
)
from proxy.web.dialects.query import schedules_of, window_of
from proxy.web.envelope import Envelope
from proxy.web.keys import AVAILABILITY, CONSUMERS, WALL_CLOCK

log = logging.getLogger(__name__)

# Graph's own context URL: clients may compare it, and it echoes nothing of the request.
ODATA_CONTEXT = (
    "https://graph.microsoft.com/v1.0/$metadata#Collection(microsoft.graph.scheduleInformation)"
)
DEFAULT_INTERVAL = 30
MIN_INTERVAL, MAX_INTERVAL = 5, 1440
# availabilityView digits. workingElsewhere is 0 as in Graph's own view; unknown counts as
# busy because a scheduler must not book over what it cannot see.
_DIGIT = {
    Status.FREE: 0,
    Status.WORKING_ELSEWHERE: 0,
    Status.TENTATIVE: 1,
    Status.BUSY: 2,
    Status.UNKNOWN: 2,
    Status.OOF: 3,
}
_DIGIT_BYTES = {digit: str(digit).encode() for digit in range(4)}
# Per-schedule errors: Graph's own responseCode for an unknown address, our codes otherwise.
_RESPONSE_CODE = {ErrorCode.NOT_FOUND: "5009"}
_MESSAGES = {
    ErrorCode.NOT_FOUND: "The address could not be resolved.",
    ErrorCode.THROTTLED: "Microsoft Graph throttled the request for this schedule.",
    ErrorCode.UPSTREAM_TIMEOUT: "Microsoft Graph did not answer in time for this schedule.",
    ErrorCode.NOT_CONNECTED: "No connection covers this schedule.",
    ErrorCode.NEEDS_CONSENT: "The connection covering this schedule must be consented again.",
}
_GENERIC_MESSAGE = "Free/busy information is not available for this schedule."
# Whole-request error codes, as Graph names them per status.
_GRAPH_CODES = {
    400: "BadRequest",
    401: "InvalidAuthenticationToken",
    403: "ErrorAccessDenied",
    404: "ResourceNotFound",
    405: "MethodNotAllowed",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    429: "TooManyRequests",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceNotAvailable",
    504: "GatewayTimeout",
}
_FIELDS = ("schedules", "starttime", "endtime", "availabilityviewinterval")
_PREFER_ZONE = re.compile(r'(?:^|[,;\s])outlook\.timezone\s*=\s*(?:"([^"]*)"|([^,;\s]+))', re.I)
_INTERVAL_TEXT = re.compile(r"^\s*[0-9]{1,5}\s*$", re.ASCII)
_UUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


def parse_get_schedule(raw: Mapping[str, Any]) -> tuple[Query, int]:
    """Validate a getSchedule body (any key casing) into a query and the view interval."""
    fields = _fold_keys(raw, "the body")
    unknown = set(fields) - set(_FIELDS)
    if unknown:
        raise BadRequest(f"unknown property: {sorted(unknown)[0]}", code=Code.UNKNOWN_FIELD)
    start = _date_time_time_zone(fields.get("starttime"), "startTime")
    end = _date_time_time_zone(fields.get("endtime"), "endTime")
    interval = _interval(fields.get("availabilityviewinterval", DEFAULT_INTERVAL))
    query = Query(schedules=schedules_of(fields.get("schedules")), window=window_of(start, end))
    return query, interval


def _fold_keys(raw: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Keys case-folded (Graph's names are case-insensitive); OData annotations dropped."""
    folded: dict[str, Any] = {}
    for key, value in raw.items():
        if key.startswith("@odata."):
            continue
        if key.casefold() in folded:
            raise BadRequest(f"{where} names {key} twice", code=Code.INVALID_REQUEST)
        folded[key.casefold()] = value
    return folded


def _date_time_time_zone(value: Any, name: str) -> datetime:
    if not isinstance(value, Mapping):
        raise BadRequest(
            f"{name} must be a dateTimeTimeZone {{dateTime, timeZone}}", code=Code.INVALID_TIME
        )
    fields = _fold_keys(value, name)
    if set(fields) != {"datetime", "timezone"}:
        raise BadRequest(f"{name} must have exactly dateTime and timeZone", code=Code.INVALID_TIME)
    instant = parse_graph_datetime({"dateTime": fields["datetime"], "timeZone": fields["timezone"]})
    if instant is None:
        raise BadRequest(
            f"{name} must be an ISO 8601 dateTime in a known Windows or IANA timeZone",
            code=Code.INVALID_TIME,
        )
    return instant


def _interval(value: Any) -> int:
    # One of Graph's own examples sends the interval as a string: ASCII digits, a few of them
    # (str.isdigit() also accepts "²" and Arabic-Indic digits, and int() of 4,301 digits raises).
    if isinstance(value, str) and _INTERVAL_TEXT.match(value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest("availabilityViewInterval must be an integer", code=Code.INVALID_REQUEST)
    if not MIN_INTERVAL <= value <= MAX_INTERVAL:
        raise BadRequest(
            f"availabilityViewInterval must be between {MIN_INTERVAL} and {MAX_INTERVAL}",
            code=Code.INVALID_REQUEST,
        )
    return value


def preferred_zone(prefer: str | None) -> tuple[str, tzinfo] | None:
    """The zone a ``Prefer: outlook.timezone="..."`` header asks for, if it is one we know."""
    if not prefer:
        return None
    match = _PREFER_ZONE.search(prefer)
    if match is None:
        return None
    name = match.group(1) if match.group(1) is not None else match.group(2)
    zone = resolve_zone(name)
    return None if zone is None else (name, zone)


def availability_view(items: Iterable[BusyItem], window: Window, interval: int) -> str:
    """One digit per interval from the window's start: the strongest status overlapping it."""
    step = timedelta(minutes=interval)
    slots = math.ceil(window.duration / step)
    view = bytearray(b"0" * slots)
    # Weakest first, each item's slots written whole: a stronger status overwrites a weaker.
    for item in sorted(items, key=lambda item: _DIGIT[item.status]):
        digit = _DIGIT[item.status]
        first = max(int((item.start - window.start) // step), 0)
        last = min(math.ceil((item.end - window.start) / step), slots)
        if digit and first < last:
            view[first:last] = _DIGIT_BYTES[digit] * (last - first)
    return view.decode()


def render_schedule(
    query: Query,
    results: Mapping[str, ScheduleResult],
    *,
    interval: int,
    zone: tuple[str, tzinfo] | None,
) -> bytes:
    """Graph's getSchedule response, built field by field: status/start/end only."""
    return join(schedule_parts(query, results, interval=interval, zone=zone))


def schedule_parts(
    query: Query,
    results: Mapping[str, ScheduleResult],
    *,
    interval: int,
    zone: tuple[str, tzinfo] | None,
) -> Parts:
    """render_schedule() piece by piece; each distinct address (its view and items) is
    rendered once, its duplicates reuse the bytes."""
    yield b'{"@odata.context":' + compact(ODATA_CONTEXT) + b',"value":[', 0
    rendered: dict[str, bytes] = {}
    view_days = math.ceil(query.window.duration / timedelta(minutes=interval) / 48)
    for n, address in enumerate(query.schedules):
        key = address.casefold()
        body = rendered.get(key)
        units = 0
        if body is None:
            result = results[key]
            body = rendered[key] = tail(_schedule_information(result, query.window, interval, zone))
            units = len(result.items) + view_days
        yield (
            (b',{"scheduleId":' if n else b'{"scheduleId":') + compact(address) + b"," + body,
            units,
        )
    yield b"]}", 0


def _schedule_information(
    result: ScheduleResult, window: Window, interval: int, zone: tuple[str, tzinfo] | None
) -> dict[str, Any]:
    """One scheduleInformation after its scheduleId, field by field."""
    if result.error is not None:
        return {
            "error": {
                "responseCode": _RESPONSE_CODE.get(result.error, result.error.value),
                "message": _MESSAGES.get(result.error, _GENERIC_MESSAGE),
            }
        }
    return {
        "availabilityView": availability_view(result.items, window, interval),
        "scheduleItems": [
            {
                "status": item.status,
                "start": _date_time(item.start, zone),
                "end": _date_time(item.end, zone),
            }
            for item in result.items
        ],
    }


def _date_time(instant: datetime, zone: tuple[str, tzinfo] | None) -> dict[str, str]:
    if zone is None:
        return {"dateTime": format_graph_local(instant.astimezone(UTC)), "timeZone": "UTC"}
    name, tz = zone
    return {"dateTime": format_graph_local(instant.astimezone(tz)), "timeZone": name}


async def get_schedule(request: web.Request) -> web.Response:
    """POST /v1.0/users/{id}/calendar/getSchedule (and /me/...): Graph's answer, minimized."""
    consumer = request.config_dict[CONSUMERS].authenticate(request.headers.get("Authorization"))
    raw = await read_json_object(request)
    if "id" not in request.match_info and not bound_to_one_person(consumer):
        raise BadRequest(
            "/me is only valid for an API key allowed exactly one address",
            code=Code.INVALID_REQUEST,
        )
    query, interval = parse_get_schedule(raw)
    zone = preferred_zone(request.headers.get("Prefer"))
    results = await request.config_dict[AVAILABILITY].lookup(consumer, query, view_minutes=interval)
    body = await join_paced(schedule_parts(query, results, interval=interval, zone=zone))
    headers = {"Cache-Control": "no-store"}
    if zone is not None:
        headers["Preference-Applied"] = f'outlook.timezone="{zone[0]}"'
    return web.Response(body=body, content_type="application/json", headers=headers)


def bound_to_one_person(consumer: Consumer) -> bool:
    """True when the consumer may query exactly one address (so ``/me`` means someone)."""
    return len(consumer.exact) == 1 and not consumer.domains


def graph_shape(request: web.Request, error: ProblemError) -> web.Response:
    """Graph's whole-request error document; our stable code rides in innerError.code."""
    # What Graph itself would answer: 429 for a throttled upstream, 503 for one unavailable.
    status = {Code.THROTTLED: 429, Code.UPSTREAM_UNAVAILABLE: 503}.get(error.code, error.status)
    headers = error.extra_headers()  # e.g. Retry-After, Allow
    if status == 401:
        headers["WWW-Authenticate"] = BEARER_CHALLENGE
    now = request.config_dict[WALL_CLOCK].now()
    inner: dict[str, str] = {
        "code": error.code.value,
        "date": format_utc(now.replace(microsecond=0)),
        "request-id": str(uuid.uuid4()),
    }
    client_request_id = request.headers.get("client-request-id", "")
    if _UUID.match(client_request_id):
        inner["client-request-id"] = client_request_id
    body = {
        "error": {
            "code": _GRAPH_CODES.get(status, "UnknownError"),
            "message": error.detail,
            "innerError": inner,
        }
    }
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        content_type="application/json",
        headers=headers or None,
    )


def graph_app(envelope: Envelope) -> web.Application:
    """The /v1.0 sub-application, with Graph's error shape."""
    app = web.Application()
    envelope.add(
        app.router, "POST", "/users/{id}/calendar/getSchedule", get_schedule, shape=graph_shape
    )
    envelope.add(app.router, "POST", "/me/calendar/getSchedule", get_schedule, shape=graph_shape)
    envelope.add_fallback(app.router, shape=graph_shape)
    return app
