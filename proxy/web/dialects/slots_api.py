"""The slot search: POST /v1/slots, when a group is free, without anyone's calendar.

The answer holds the slots (start, end and, with a count of required participants, who is
free in each), whether more were left out, and which participants could not be read: no
status, no busy period, no item of anyone.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, timedelta, tzinfo
from typing import Any

from aiohttp import web

from proxy.availability.memo import SLOTS, MemoKey
from proxy.core.errors import BadRequest, Code
from proxy.core.free_time import (
    DEFAULT_INTERVAL_MINUTES,
    DEFAULT_RESULTS,
    FORMATS,
    MAX_BUFFER_MINUTES,
    MAX_MINUTES,
    MAX_OPEN_HOURS,
    MAX_PARTICIPANTS,
    MAX_RESULTS,
    MAX_WINDOW_DAYS,
    WEEKDAYS,
    Format,
    OpenHours,
    SlotAnswer,
    SlotQuestion,
    SlotSearch,
)
from proxy.core.timefmt import format_utc
from proxy.core.zones import resolve_zone
from proxy.web.dialects.common import json_body_key, json_response, read_json_object
from proxy.web.dialects.query import parse_instant, schedules_of, window_of
from proxy.web.keys import AVAILABILITY, CONSUMERS

_FIELDS = frozenset(
    {
        "participants",
        "required",
        "start",
        "end",
        "duration_minutes",
        "interval_minutes",
        "buffer_before_minutes",
        "buffer_after_minutes",
        "open_hours",
        "format",
        "max_results",
    }
)
_PARTICIPANT_FIELDS = frozenset({"schedule", "optional"})
_OPEN_HOURS_FIELDS = frozenset({"days", "start", "end", "time_zone"})
_CLOCK_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$|^24:00$")
_WEEKDAY = {name: number for number, name in enumerate(WEEKDAYS)}


def parse_slots(raw: Mapping[str, Any]) -> SlotQuestion:
    """The request's fields as a slot question, or BadRequest saying what is wrong."""
    unknown = set(raw) - _FIELDS
    if unknown:
        raise BadRequest(f"unknown field: {sorted(unknown)[0]}", code=Code.UNKNOWN_FIELD)
    schedules, optional = _participants(raw.get("participants"))
    required = _required(raw.get("required", "all"), optional)
    start, end = parse_instant(raw.get("start"), "start"), parse_instant(raw.get("end"), "end")
    window = window_of(start, end)
    if window.duration > timedelta(days=MAX_WINDOW_DAYS):
        raise BadRequest(
            f"a slot search may span at most {MAX_WINDOW_DAYS} days", code=Code.WINDOW_TOO_LONG
        )
    open_hours, zone = _open_hours(raw.get("open_hours", []))
    search = SlotSearch(
        window=window,
        duration=_minutes(raw, "duration_minutes", None, low=1, high=MAX_MINUTES),
        interval=_minutes(
            raw, "interval_minutes", DEFAULT_INTERVAL_MINUTES, low=1, high=MAX_MINUTES
        ),
        buffer_before=_minutes(raw, "buffer_before_minutes", 0, low=0, high=MAX_BUFFER_MINUTES),
        buffer_after=_minutes(raw, "buffer_after_minutes", 0, low=0, high=MAX_BUFFER_MINUTES),
        open_hours=open_hours,
        zone=zone,
        required=required,
        format=_format(raw.get("format", "slots")),
        max_results=_integer(raw, "max_results", DEFAULT_RESULTS, low=1, high=MAX_RESULTS),
    )
    return SlotQuestion(schedules=schedules, optional=optional, search=search)


def _participants(value: Any) -> tuple[tuple[str, ...], tuple[bool, ...]]:
    if not isinstance(value, list) or not value:
        raise BadRequest(
            "participants must be a non-empty list of {schedule, optional}",
            code=Code.INVALID_SCHEDULES,
        )
    addresses: list[Any] = []
    optional: list[bool] = []
    for entry in value:
        if (
            not isinstance(entry, Mapping)
            or "schedule" not in entry
            or not set(entry) <= _PARTICIPANT_FIELDS
        ):
            raise BadRequest(
                "every participant must be an object {schedule, optional}",
                code=Code.INVALID_SCHEDULES,
            )
        flag = entry.get("optional", False)
        if not isinstance(flag, bool):
            raise BadRequest("optional must be true or false", code=Code.INVALID_REQUEST)
        addresses.append(entry["schedule"])
        optional.append(flag)
    schedules = schedules_of(addresses)
    if len(schedules) > MAX_PARTICIPANTS:
        raise BadRequest(
            f"at most {MAX_PARTICIPANTS} participants per slot search",
            code=Code.TOO_MANY_SCHEDULES,
        )
    if len({address.casefold() for address in schedules}) != len(schedules):
        raise BadRequest("each participant may be named once", code=Code.INVALID_SCHEDULES)
    return schedules, tuple(optional)


def _required(value: Any, optional: tuple[bool, ...]) -> int | None:
    if value == "all":
        if all(optional):
            raise BadRequest(
                'required "all" needs a participant who is not optional',
                code=Code.INVALID_REQUEST,
            )
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= len(optional):
        raise BadRequest(
            f'required must be "all" or an integer from 1 to {len(optional)}',
            code=Code.INVALID_REQUEST,
        )
    return value


def _integer(raw: Mapping[str, Any], name: str, default: int | None, *, low: int, high: int) -> int:
    value = raw.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        what = "is required: an integer" if value is None else "must be an integer"
        raise BadRequest(f"{name} {what} from {low} to {high}", code=Code.INVALID_REQUEST)
    return value


def _minutes(
    raw: Mapping[str, Any], name: str, default: int | None, *, low: int, high: int
) -> timedelta:
    return timedelta(minutes=_integer(raw, name, default, low=low, high=high))


def _format(value: Any) -> Format:
    for known in FORMATS:
        if value == known:
            return known
    raise BadRequest(f"format must be one of {', '.join(FORMATS)}", code=Code.INVALID_REQUEST)


def _open_hours(value: Any) -> tuple[tuple[OpenHours, ...], tzinfo]:
    """The rules, and the one zone they (and the grid) are in; UTC without rules."""
    if not isinstance(value, list) or len(value) > MAX_OPEN_HOURS:
        raise BadRequest(
            f"open_hours must be a list of at most {MAX_OPEN_HOURS} "
            "{days, start, end, time_zone}",
            code=Code.INVALID_REQUEST,
        )
    rules: list[OpenHours] = []
    zones: list[tzinfo] = []
    for entry in value:
        if not isinstance(entry, Mapping) or set(entry) != _OPEN_HOURS_FIELDS:
            raise BadRequest(
                "every open_hours entry must be an object {days, start, end, time_zone}",
                code=Code.INVALID_REQUEST,
            )
        days = entry["days"]
        if (
            not isinstance(days, list)
            or not days
            or not all(isinstance(d, str) and d in _WEEKDAY for d in days)
        ):
            raise BadRequest(
                f"open_hours days must be a non-empty list of {', '.join(WEEKDAYS)}",
                code=Code.INVALID_REQUEST,
            )
        start, end = _clock_time(entry["start"], "start"), _clock_time(entry["end"], "end")
        if not start < end:
            raise BadRequest("open_hours end must be after start", code=Code.INVALID_TIME)
        name = entry["time_zone"]
        zone = resolve_zone(name) if isinstance(name, str) else None
        if zone is None:
            raise BadRequest(
                "open_hours time_zone must be an IANA or Windows time zone name",
                code=Code.INVALID_TIME_ZONE,
            )
        zones.append(zone)
        rules.append(OpenHours(days=frozenset(_WEEKDAY[d] for d in days), start=start, end=end))
    # By name: "UTC" and Windows' "Coordinated Universal Time" resolve to different objects.
    if len({str(zone) for zone in zones}) > 1:
        raise BadRequest(
            "every open_hours entry must name the same time_zone", code=Code.INVALID_TIME_ZONE
        )
    return tuple(rules), (zones[0] if zones else UTC)


def _clock_time(value: Any, name: str) -> timedelta:
    match = _CLOCK_TIME.match(value) if isinstance(value, str) else None
    if match is None:
        raise BadRequest(
            f"open_hours {name} must be a time HH:MM from 00:00 to 24:00", code=Code.INVALID_TIME
        )
    if match.group(1) is None:
        return timedelta(hours=24)
    return timedelta(hours=int(match.group(1)), minutes=int(match.group(2)))


def render_slots(question: SlotQuestion, answer: SlotAnswer) -> bytes:
    """The /v1/slots body, field by field: slots, truncated, errors; nothing per person."""
    schedules = question.schedules
    counted = question.search.required is not None
    slots: list[dict[str, Any]] = []
    for slot in answer.free.slots:
        entry: dict[str, Any] = {"start": format_utc(slot.start), "end": format_utc(slot.end)}
        if counted:
            entry["available"] = [schedules[index] for index in slot.available]
        slots.append(entry)
    document = {
        "slots": slots,
        "truncated": answer.free.truncated,
        "errors": [{"schedule": address, "code": code.value} for address, code in answer.errors],
    }
    return json.dumps(document, separators=(",", ":")).encode()


async def slots(request: web.Request) -> web.Response:
    """POST /v1/slots: when the participants could meet, and nothing else about them."""
    app = request.app
    consumer = app[CONSUMERS].authenticate(request.headers.get("Authorization"))
    service = app[AVAILABILITY]
    key = await _memo_key(request, consumer.name)
    if key is not None:
        body = await service.recall(consumer, key)
        if body is not None:
            return json_response(body)
    question = parse_slots(await read_json_object(request))
    answer = await service.slots(consumer, question)
    body = render_slots(question, answer)
    if key is not None:
        service.remember_slots(consumer, key, question, answer, body)
    return json_response(body)


async def _memo_key(request: web.Request, consumer: str) -> MemoKey | None:
    """The request as sent, for the memo; None when it could not succeed as it stands."""
    body = await json_body_key(request)
    return None if body is None else (consumer, SLOTS, body)
