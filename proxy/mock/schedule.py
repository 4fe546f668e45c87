"""getSchedule without HTTP: read the request as Graph does, answer in Graph's shape."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from proxy.mock.calendar import WEEKDAYS, CalendarEvent, profile
from proxy.mock.canary import canary
from proxy.mock.organisation import Organisation
from proxy.mock.timezones import (
    custom_time_zone,
    format_graph_datetime,
    parse_graph_datetime,
    resolve_zone,
)

MAX_SCHEDULES = 20
MAX_WINDOW = timedelta(days=62)
DEFAULT_INTERVAL = 30
ODATA_CONTEXT = (
    "https://graph.microsoft.com/v1.0/$metadata#Collection(microsoft.graph.scheduleInformation)"
)
Breach = Literal["too_many_schedules", "window_too_long"]

# availabilityView digits; workingElsewhere reads as free for backward compatibility.
_VIEW_DIGIT = {"free": 0, "workingElsewhere": 0, "unknown": 0, "tentative": 1, "busy": 2, "oof": 3}
_PREFER_TZ = re.compile(r'outlook\.timezone\s*=\s*(?:"([^"]*)"|([^,;\s]+))', re.IGNORECASE)


class ScheduleRequestError(Exception):
    """A whole-request failure, carrying Graph's status and error code."""

    def __init__(
        self, status: int, code: str, message: str, *, breach: Breach | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.breach = breach


@dataclass(frozen=True, kw_only=True)
class ScheduleQuery:
    """A validated getSchedule request: whom, which UTC window, which interval."""

    schedules: tuple[str, ...]
    start: datetime
    end: datetime
    interval: int


def _lower_keys(value: object) -> dict[str, Any] | None:
    """Return a JSON object with lower-cased keys (Graph's names are case-insensitive)."""
    if not isinstance(value, Mapping):
        return None
    return {str(key).lower(): item for key, item in value.items()}


def requested_schedules(body: object) -> list[str]:
    """Return the addresses a request body asks for, or [] when it is not readable."""
    fields = _lower_keys(body)
    schedules = fields.get("schedules") if fields else None
    if not isinstance(schedules, list):
        return []
    return [s for s in schedules if isinstance(s, str)]


def summarise(body: object) -> dict[str, Any]:
    """Return the schedules, window and interval of a body as leniently as possible (for stats)."""
    fields = _lower_keys(body) or {}
    summary: dict[str, Any] = {"schedules": requested_schedules(body)}
    for name, key in (("start", "starttime"), ("end", "endtime")):
        try:
            summary[name] = _read_time(fields.get(key), key).isoformat().replace("+00:00", "Z")
        except ScheduleRequestError:
            summary[name] = None
    summary["interval"] = fields.get("availabilityviewinterval", DEFAULT_INTERVAL)
    return summary


def _read_time(value: object, name: str) -> datetime:
    fields = _lower_keys(value)
    if fields is None or not isinstance(fields.get("datetime"), str):
        raise ScheduleRequestError(
            400, "ErrorInvalidParameter", f"{name} must be a dateTimeTimeZone object."
        )
    zone_name = fields.get("timezone") or "UTC"
    zone = resolve_zone(zone_name) if isinstance(zone_name, str) else None
    if zone is None:
        raise ScheduleRequestError(
            400, "ErrorTimeZoneNotSupported", f"The time zone '{zone_name}' is not supported."
        )
    instant = parse_graph_datetime(fields["datetime"], zone)
    if instant is None:
        raise ScheduleRequestError(
            400, "ErrorInvalidParameter", f"The value of {name}.dateTime is not a valid date."
        )
    return instant


def parse_query(body: object) -> ScheduleQuery:
    """Return the validated query, or raise ScheduleRequestError exactly as Graph would answer."""
    fields = _lower_keys(body)
    if fields is None:
        raise ScheduleRequestError(
            400,
            "BadRequest",
            "Unable to read JSON request payload. Please ensure Content-Type header is set "
            "and payload is of valid JSON format.",
        )
    schedules = fields.get("schedules")
    if not isinstance(schedules, list) or not all(isinstance(s, str) for s in schedules):
        raise ScheduleRequestError(
            400, "ErrorInvalidParameter", "schedules must be a list of e-mail addresses."
        )
    if not schedules:
        raise ScheduleRequestError(
            400, "ErrorInvalidParameter", "At least one schedule must be requested."
        )
    if len(schedules) > MAX_SCHEDULES:
        # Real Graph only refuses past 100 (ErrorMailboxDataArrayTooBig); the documented limit
        # is 20, and the mock holds clients to the documentation.
        raise ScheduleRequestError(
            400,
            "ErrorMailboxDataArrayTooBig",
            f"Too many mailboxes requested: {len(schedules)}; at most {MAX_SCHEDULES} are allowed.",
            breach="too_many_schedules",
        )
    start = _read_time(fields.get("starttime"), "startTime")
    end = _read_time(fields.get("endtime"), "endTime")
    if end <= start:
        raise ScheduleRequestError(
            400, "ErrorInvalidTimeInterval", "The end time must be after the start time."
        )
    if end - start >= MAX_WINDOW:
        raise ScheduleRequestError(
            400,
            "ErrorInvalidTimeInterval",
            "The requested time window must be shorter than 62 days.",
            breach="window_too_long",
        )
    interval = _read_interval(fields)
    return ScheduleQuery(schedules=tuple(schedules), start=start, end=end, interval=interval)


def _read_interval(fields: Mapping[str, Any]) -> int:
    if "availabilityviewinterval" not in fields:
        return DEFAULT_INTERVAL
    raw = fields["availabilityviewinterval"]
    if raw is None:
        # Observed on real Graph: an explicit null is an internal server error, not a 400.
        raise ScheduleRequestError(
            500, "ErrorInternalServerError", "An internal server error occurred."
        )
    value: int | None = None
    if isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    elif isinstance(raw, str) and raw.strip().isdigit():
        value = int(raw)  # one documentation example sends the interval as a string
    if value is None or not 5 <= value <= 1440:
        raise ScheduleRequestError(
            400,
            "ErrorInvalidParameter",
            "availabilityViewInterval must be an integer between 5 and 1440.",
        )
    return value


def prefer_label(header: str | None) -> str | None:
    """Return the zone name of ``outlook.timezone`` in a Prefer header, as written, or None."""
    match = _PREFER_TZ.search(header or "")
    if match is None:
        return None
    return (match.group(1) or match.group(2) or "").strip() or None


def prefer_time_zone(header: str | None) -> tuple[ZoneInfo, str] | None:
    """Return the zone and label a Prefer header asks for, or None to answer in UTC."""
    label = prefer_label(header)
    if label is None:
        return None
    zone = resolve_zone(label)
    # Graph ignores a zone it does not know and answers in UTC.
    return (zone, label) if zone is not None else None


def build_response(
    organisation: Organisation,
    query: ScheduleQuery,
    *,
    out_zone: tuple[ZoneInfo, str] | None = None,
) -> dict[str, Any]:
    """Return the 200 body: one scheduleInformation per requested address, in request order."""
    zone, label = out_zone or (ZoneInfo("UTC"), "UTC")
    return {
        "@odata.context": ODATA_CONTEXT,
        "value": [
            _schedule_information(organisation, address, query, zone, label)
            for address in query.schedules
        ],
    }


def _schedule_information(
    organisation: Organisation, address: str, query: ScheduleQuery, zone: ZoneInfo, label: str
) -> dict[str, Any]:
    mailbox = organisation.lookup(address)
    if mailbox is None or not address.strip().lower().endswith("@" + organisation.domain):
        marker = canary("err", organisation.seed, address)
        return {
            "scheduleId": address,
            "error": {
                "message": f"Unable to resolve e-mail address {address} to an Active Directory "
                f"object. {marker}",
                "responseCode": "5009",
            },
        }
    events = organisation.events(mailbox.address, query.start, query.end)
    habits = profile(mailbox, organisation.seed)
    return {
        "scheduleId": address,
        "availabilityView": availability_view(events, query),
        "scheduleItems": [_schedule_item(event, zone, label) for event in events],
        "workingHours": {
            "daysOfWeek": [WEEKDAYS[d] for d in habits.working_days],
            "startTime": habits.work_start.strftime("%H:%M:%S.0000000"),
            "endTime": habits.work_end.strftime("%H:%M:%S.0000000"),
            "timeZone": custom_time_zone(
                mailbox.time_zone,
                year=query.start.year,
                canary=canary("tz", organisation.seed, mailbox.address),
            ),
        },
    }


def _schedule_item(event: CalendarEvent, zone: ZoneInfo, label: str) -> dict[str, Any]:
    return {
        "isPrivate": event.is_private,
        "status": event.status,
        "subject": event.subject,
        "location": event.location,
        "start": {"dateTime": format_graph_datetime(event.start, zone), "timeZone": label},
        "end": {"dateTime": format_graph_datetime(event.end, zone), "timeZone": label},
    }


def availability_view(events: list[CalendarEvent], query: ScheduleQuery) -> str:
    """Return one digit per interval: the most significant status overlapping it."""
    step = timedelta(minutes=query.interval)
    slots = math.ceil((query.end - query.start) / step)
    digits = [0] * slots
    for event in events:
        digit = _VIEW_DIGIT[event.status]
        if digit == 0:
            continue
        first = max(0, math.floor((event.start - query.start) / step))
        last = min(slots, math.ceil((event.end - query.start) / step))
        for slot in range(first, last):
            digits[slot] = max(digits[slot], digit)
    return "".join(map(str, digits))
