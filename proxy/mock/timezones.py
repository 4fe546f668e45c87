"""Graph's date-time dialect: Windows or IANA zone names, seven fractional digits."""

from __future__ import annotations

import copy
import re
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# Graph accepts Windows zone names as well as IANA ones; these are the common ones.
WINDOWS_ZONES: dict[str, str] = {
    "UTC": "UTC",
    "Coordinated Universal Time": "UTC",
    "Pacific Standard Time": "America/Los_Angeles",
    "Mountain Standard Time": "America/Denver",
    "Central Standard Time": "America/Chicago",
    "Eastern Standard Time": "America/New_York",
    "W. Europe Standard Time": "Europe/Berlin",
    "Romance Standard Time": "Europe/Paris",
    "Central Europe Standard Time": "Europe/Budapest",
    "GMT Standard Time": "Europe/London",
    "Tokyo Standard Time": "Asia/Tokyo",
    "India Standard Time": "Asia/Kolkata",
    "Singapore Standard Time": "Asia/Singapore",
    "China Standard Time": "Asia/Shanghai",
    "AUS Eastern Standard Time": "Australia/Sydney",
    "E. South America Standard Time": "America/Sao_Paulo",
}

_FRACTION = re.compile(r"\.(\d+)")
_OFFSET_SUFFIX = re.compile(r"(Z|[+-]\d{2}:?\d{2})$", re.IGNORECASE)


def resolve_zone(name: str) -> ZoneInfo | None:
    """Return the zone for a Windows or IANA name, or None when Graph would not know it."""
    stripped = name.strip()
    iana = WINDOWS_ZONES.get(stripped)
    if iana is None:
        iana = next((v for k, v in WINDOWS_ZONES.items() if k.lower() == stripped.lower()), None)
    try:
        return ZoneInfo(iana or stripped)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def parse_graph_datetime(value: str, zone: ZoneInfo) -> datetime | None:
    """Return the aware UTC instant of a Graph dateTime read in ``zone``, or None if unreadable.

    An explicit offset in the string wins over the zone, as Graph lets it.
    """
    text = value.strip()
    # Python reads at most six fractional digits; Graph writes seven.
    text = _FRACTION.sub(lambda m: "." + m.group(1)[:6].ljust(6, "0"), text, count=1)
    if text.endswith(("z", "Z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    return parsed.astimezone(UTC)


def format_graph_datetime(instant: datetime, zone: ZoneInfo) -> str:
    """Return ``instant`` as Graph writes it: local wall time in ``zone``, seven fraction digits."""
    local = instant.astimezone(zone)
    return local.strftime("%Y-%m-%dT%H:%M:%S") + f".{local.microsecond:06d}0"


def _offset(zone: ZoneInfo, day: date) -> timedelta:
    return datetime(day.year, day.month, day.day, 12, tzinfo=zone).utcoffset() or timedelta(0)


def _transition(zone: ZoneInfo, year: int, *, to_daylight: bool) -> dict[str, Any]:
    """Return Graph's recurrence rule (month, n-th weekday) for one DST change in ``year``."""
    # Find the month in which the offset moves the wanted way, then the first day (at noon)
    # showing the new offset: the changes happen in the small hours.
    for month in range(1, 13):
        first = date(year, month, 1)
        following = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
        before, after = _offset(zone, first), _offset(zone, following)
        if before == after or (after > before) != to_daylight:
            continue
        day = first
        while _offset(zone, day) == before:
            day += timedelta(days=1)
        last = (day + timedelta(days=7)).month != day.month
        return {
            "time": "02:00:00.0000000" if to_daylight else "03:00:00.0000000",
            "dayOccurrence": 5 if last else (day.day - 1) // 7 + 1,
            "dayOfWeek": day.strftime("%A").lower(),
            "month": day.month,
            "year": 0,
        }
    return {"time": "00:00:00.0000000", "dayOccurrence": 1, "dayOfWeek": "sunday", "month": 0}


@lru_cache(maxsize=256)
def _zone_rules(zone_name: str, year: int) -> tuple[int, dict[str, Any] | None]:
    """Return the standard bias in minutes and, for DST zones, the two transition rules."""
    zone = ZoneInfo(zone_name)
    january = datetime(year, 1, 15, 12, tzinfo=zone).utcoffset() or timedelta(0)
    july = datetime(year, 7, 15, 12, tzinfo=zone).utcoffset() or timedelta(0)
    standard, daylight = (january, july) if january <= july else (july, january)
    bias = -int(standard.total_seconds() // 60)
    if standard == daylight:
        return bias, None
    rules = {
        "standardOffset": _transition(zone, year, to_daylight=False),
        "daylightOffset": {
            **_transition(zone, year, to_daylight=True),
            "daylightBias": -int((daylight - standard).total_seconds() // 60),
        },
    }
    return bias, rules


def custom_time_zone(zone_name: str, *, year: int, canary: str) -> dict[str, Any]:
    """Return a Graph ``customTimeZone`` describing ``zone_name`` in ``year``, named with a canary.

    Mailboxes whose zone was set in Outlook on the web come back like this, and the name is free
    text: a proxy must never pass it on.
    """
    bias, rules = _zone_rules(zone_name, year)
    result: dict[str, Any] = {
        "@odata.type": "#microsoft.graph.customTimeZone",
        "bias": bias,
        "name": f"Customized Time Zone {canary}",
    }
    if rules is not None:
        result.update(copy.deepcopy(rules))
    return result
