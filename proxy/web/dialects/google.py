"""Google Calendar freeBusy dialect: POST /calendar/v3/freeBusy, with Google's error shape."""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Mapping
from datetime import datetime, tzinfo
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from proxy.availability.service import lookup
from proxy.config.schema import LimitSettings
from proxy.core.errors import BadRequest, ProblemError
from proxy.core.model import ErrorCode, ScheduleResult, Status
from proxy.core.timefmt import format_utc
from proxy.core.zones import resolve_zone
from proxy.web.dialects.common import BEARER_CHALLENGE, merge_periods, read_json_object, root_app
from proxy.web.dialects.native import AvailabilityQuery, parse_query
from proxy.web.envelope import Envelope
from proxy.web.headers import check_query_length
from proxy.web.keys import CONSUMERS, SETTINGS

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
    "window_too_long": "timeRangeTooLong",
    "invalid_window": "timeRangeEmpty",
    "too_many_schedules": "tooManyCalendarsRequestedForFreeBusy",
}


def parse_freebusy(
    raw: Mapping[str, Any], limits: LimitSettings
) -> tuple[AvailabilityQuery, tzinfo | None]:
    """Validate a freeBusy request body into a query and the response zone (None = UTC)."""
    max_schedules = min(MAX_ITEMS, limits.max_schedules)
    unknown = set(raw) - _FIELDS
    if unknown:
        raise BadRequest(f"unknown field: {sorted(unknown)[0]}", code="unknown_field")
    items = raw.get("items")
    if not isinstance(items, list) or not items:
        raise BadRequest("items must be a non-empty list of {id}", code="invalid_schedules")
    if len(items) > max_schedules:
        raise BadRequest(
            f"at most {max_schedules} calendars per request", code="too_many_schedules"
        )
    ids = []
    for item in items:
        if not isinstance(item, Mapping) or set(item) != {"id"}:
            raise BadRequest("every item must be an object {id}", code="invalid_schedules")
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
            raise BadRequest("timeZone must be an IANA time zone name", code="invalid_time_zone")
    query = parse_query(
        {"schedules": ids, "start": raw.get("timeMin"), "end": raw.get("timeMax")}, limits
    )
    return query, zone


def render_freebusy(
    query: AvailabilityQuery,
    results: Mapping[str, ScheduleResult],
    *,
    busy_statuses: Collection[Status],
    zone: tzinfo | None,
) -> bytes:
    """Google's calendar#freeBusy: merged busy periods per calendar id, or its errors."""
    calendars: dict[str, Any] = {}
    for address in query.schedules:
        result = results[address.casefold()]
        if result.error is not None:
            reason = _REASONS.get(result.error, "backendError")
            calendars[address] = {"errors": [{"domain": "global", "reason": reason}], "busy": []}
            continue
        calendars[address] = {
            "busy": [
                {"start": _format(start, zone), "end": _format(end, zone)}
                for start, end in merge_periods(result.items, busy_statuses)
            ]
        }
    document = {
        "kind": "calendar#freeBusy",
        "timeMin": format_utc(query.window.start),
        "timeMax": format_utc(query.window.end),
        "calendars": calendars,
    }
    return json.dumps(document, separators=(",", ":")).encode()


def _format(instant: datetime, zone: tzinfo | None) -> str:
    if zone is None:
        return format_utc(instant)
    return instant.astimezone(zone).isoformat()


async def freebusy(request: web.Request) -> web.Response:
    """POST /calendar/v3/freeBusy: Google's freeBusy.query answered from minimized data."""
    consumer = request.config_dict[CONSUMERS].authenticate(request.headers.get("Authorization"))
    for name in request.query:
        if name not in _STANDARD_PARAMETERS:
            raise BadRequest(f"unknown parameter: {name}", code="unknown_field")
    if request.query.get("alt", "json") != "json":
        raise BadRequest("only alt=json is supported", code="invalid_request")
    raw = await read_json_object(request)
    query, zone = parse_freebusy(raw, request.config_dict[SETTINGS].limits)
    results = await lookup(root_app(request), consumer, query.schedules, query.window)
    body = render_freebusy(query, results, busy_statuses=consumer.busy_statuses, zone=zone)
    return web.Response(
        body=body, content_type="application/json", headers={"Cache-Control": "no-store"}
    )


def google_error(
    status: int, *, reason: str, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    """Google's error document, every field written by us."""
    _, rpc_status = _HTTP_REASONS.get(status, ("backendError", "UNKNOWN"))
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
        headers=headers,
    )


def _domain(reason: str) -> str:
    return "usageLimits" if reason == "rateLimitExceeded" else "global"


async def google_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every error under /calendar/v3 in Google's shape; unexpected ones as a bare 500."""
    try:
        check_query_length(request)
        return await handler(request)
    except ProblemError as exc:
        status = 429 if exc.code == "throttled" else exc.status
        reason = _REASON_BY_CODE.get(exc.code, _HTTP_REASONS.get(status, ("backendError",))[0])
        if exc.code in {"invalid_time", "invalid_time_zone"}:
            reason = "invalid"
        headers = {"WWW-Authenticate": BEARER_CHALLENGE} if status == 401 else None
        headers = {**(headers or {}), **exc.extra_headers()} or None  # e.g. Retry-After
        return google_error(status, reason=reason, message=exc.detail, headers=headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        reason = _HTTP_REASONS.get(exc.status, ("backendError",))[0]
        return google_error(
            exc.status, reason=reason, message=HTTPStatus(exc.status).phrase, headers=headers
        )
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return google_error(500, reason="internalError", message="internal error")


def google_app(envelope: Envelope) -> web.Application:
    """The /calendar/v3 sub-application, with its own error shape."""
    app = web.Application()
    envelope.add(app.router, "POST", "/freeBusy", freebusy, shape=google_errors)
    envelope.add_fallback(app.router, shape=google_errors)
    return app
