"""The consumer-facing JSON API: /v1/availability, and health endpoints."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from aiohttp import web

from proxy.availability.memo import MemoKey
from proxy.availability.service import lookup
from proxy.config.schema import LimitSettings
from proxy.core.errors import BadRequest
from proxy.core.model import ScheduleResult, Window
from proxy.core.policy import fetch_window
from proxy.core.timefmt import format_utc, parse_rfc3339
from proxy.observability.audit_record import note_request
from proxy.web.dialects.common import read_json_object
from proxy.web.keys import CONSUMERS, MEMO, RATE_LIMITS, READINESS, SETTINGS, WALL_CLOCK

# Deliberately plain: a mailbox address as Exchange accepts it, ASCII, no quoting or comments.
_ADDRESS = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
_MAX_ADDRESS_LENGTH = 254


@dataclass(frozen=True, slots=True)
class AvailabilityQuery:
    """A validated request: addresses as the consumer spelled them, and a UTC window."""

    schedules: tuple[str, ...]
    window: Window


def parse_query(raw: Mapping[str, Any], limits: LimitSettings) -> AvailabilityQuery:
    """Validate a request's fields into a query, or raise BadRequest saying what is wrong."""
    unknown = set(raw) - {"schedules", "start", "end"}
    if unknown:
        raise BadRequest(f"unknown field: {sorted(unknown)[0]}", code="unknown_field")
    schedules = raw.get("schedules")
    if not isinstance(schedules, list) or not schedules:
        raise BadRequest(
            "schedules must be a non-empty list of addresses", code="invalid_schedules"
        )
    if len(schedules) > limits.max_schedules:
        raise BadRequest(
            f"at most {limits.max_schedules} schedules per request", code="too_many_schedules"
        )
    for address in schedules:
        if (
            not isinstance(address, str)
            or len(address) > _MAX_ADDRESS_LENGTH
            or not _ADDRESS.match(address)
        ):
            raise BadRequest("every schedule must be an e-mail address", code="invalid_schedules")
    start, end = _instant(raw, "start"), _instant(raw, "end")
    if not start < end:
        raise BadRequest("end must be after start", code="invalid_window")
    if end - start > timedelta(days=limits.max_window_days):
        raise BadRequest(
            f"the window may span at most {limits.max_window_days} days", code="window_too_long"
        )
    return AvailabilityQuery(schedules=tuple(schedules), window=Window(start=start, end=end))


def _instant(raw: Mapping[str, Any], name: str) -> Any:
    value = raw.get(name)
    if not isinstance(value, str):
        raise BadRequest(
            f"{name} is required (RFC 3339, e.g. 2026-03-15T09:00:00Z)", code="invalid_time"
        )
    try:
        return parse_rfc3339(value)
    except ValueError:
        raise BadRequest(
            f"{name} must be an RFC 3339 date-time with offset, e.g. 2026-03-15T09:00:00Z",
            code="invalid_time",
        ) from None


def render_availability(query: AvailabilityQuery, results: Mapping[str, ScheduleResult]) -> bytes:
    """The JSON API body: an entry per requested address, in request order, field by field."""
    schedules = []
    for address in query.schedules:
        result = results[address.casefold()]
        schedules.append(
            {
                "schedule": address,
                "items": [
                    {
                        "status": item.status.value,
                        "start": format_utc(item.start),
                        "end": format_utc(item.end),
                    }
                    for item in result.items
                ],
                "error": None if result.error is None else {"code": result.error.value},
                "stale": result.stale,
            }
        )
    document = {
        "start": format_utc(query.window.start),
        "end": format_utc(query.window.end),
        "schedules": schedules,
    }
    return json.dumps(document, separators=(",", ":")).encode()


async def availability(request: web.Request) -> web.Response:
    """GET or POST /v1/availability: minimized free/busy for the requested addresses."""
    app = request.app
    consumer = app[CONSUMERS].authenticate(request.headers.get("Authorization"))
    key = await _memo_key(request, consumer.name)
    policy = consumer.policy
    if key is not None:
        memoized = app[MEMO].get(key, policy=policy, now=app[WALL_CLOCK].now())
        if memoized is not None:
            # The same duties as lookup(): audit, rate; the rest held when it was stored.
            note_request(memoized.schedules, memoized.window)
            app[RATE_LIMITS].take(consumer.name, policy.rate_per_minute)
            return _json_response(memoized.body)
    raw = await _read_request(request)
    query = parse_query(raw, app[SETTINGS].limits)
    results = await lookup(app, consumer, query.schedules, query.window)
    body = render_availability(query, results)
    if key is not None and all(r.error is None and not r.stale for r in results.values()):
        app[MEMO].put(
            key,
            body=body,
            schedules=query.schedules,
            window=query.window,
            policy=policy,
            fetch_window=fetch_window(policy, query.window),
        )
    return _json_response(body)


def _json_response(body: bytes) -> web.Response:
    return web.Response(
        body=body, content_type="application/json", headers={"Cache-Control": "no-store"}
    )


async def _memo_key(request: web.Request, consumer: str) -> MemoKey | None:
    """The request as sent, for the memo; None when it could not succeed as it stands."""
    if request.method == "GET":
        # Raw: percent-decoding first would let "a%26b" and "a&b" share an entry.
        return (
            consumer,
            "GET",
            request.rel_url.raw_query_string.encode("utf-8", "surrogateescape"),
        )
    # The common spelling compared as is; anything else parsed (parameters, letter case).
    if (
        request.headers.get("Content-Type") != "application/json"
        and request.content_type != "application/json"
    ):
        return None
    return (consumer, "POST", await request.read())


async def _read_request(request: web.Request) -> Mapping[str, Any]:
    """The request's fields from a JSON body (POST) or the query string (GET)."""
    if request.method == "GET":
        query = request.query
        for name in query:
            if len(query.getall(name)) > 1:
                raise BadRequest(f"{name} is given more than once", code="invalid_request")
        raw: dict[str, Any] = dict(query)
        if "schedules" in raw:
            raw["schedules"] = [s.strip() for s in raw["schedules"].split(",") if s.strip()]
        return raw
    return await read_json_object(request)


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process serves requests."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: a token can be had and Graph answers; 503 otherwise."""
    report = await request.app[READINESS].report()
    return web.json_response(
        {
            "status": "ready" if report.ready else "not_ready",
            "checks": report.checks,
            **report.details,
        },
        status=200 if report.ready else 503,
    )
