"""The minimizer: Graph scheduleInformation in, status/start/end out, nothing else.

Output is built only from the allowed fields. Nothing from an upstream object is copied
wholesale, so a key Graph adds tomorrow cannot reach a consumer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from proxy.core.model import STATUS_BY_FOLDED, BusyItem, ErrorCode, ScheduleResult, Window
from proxy.core.zones import resolve_zone

# Graph's responseCode for an address it cannot resolve.
_NOT_FOUND_CODES = frozenset({"5009", "ErrorMailboxNotFound", "ErrorInvalidUser"})
_MAX_DATETIME_LENGTH = 40


def minimize(value: Any, *, requested: Iterable[str], window: Window) -> dict[str, ScheduleResult]:
    """Map each requested address (case-folded) to minimized items or an error code.

    Never raises on any JSON-shaped input. Items are UTC, clipped to the window, sorted and
    de-duplicated; schedules nobody asked for are ignored; requested addresses Graph did not
    answer for get ``upstream_error``.
    """
    wanted = {address.casefold() for address in requested}
    results: dict[str, ScheduleResult] = {}
    for entry in value if isinstance(value, list) else ():
        if not isinstance(entry, dict):
            continue
        schedule_id = entry.get("scheduleId")
        if not isinstance(schedule_id, str):
            continue
        key = schedule_id.casefold()
        if key not in wanted or key in results:
            continue
        results[key] = _minimize_schedule(entry, window)
    for key in wanted - results.keys():
        results[key] = ScheduleResult.failed(ErrorCode.UPSTREAM_ERROR)
    return results


def _minimize_schedule(entry: Mapping[str, Any], window: Window) -> ScheduleResult:
    """Minimize one scheduleInformation: an error code if Graph reported one, else items."""
    error = entry.get("error")
    if error is not None:
        code = error.get("responseCode") if isinstance(error, dict) else None
        if isinstance(code, str | int) and str(code) in _NOT_FOUND_CODES:
            return ScheduleResult.failed(ErrorCode.NOT_FOUND)
        return ScheduleResult.failed(ErrorCode.UPSTREAM_ERROR)
    raw_items = entry.get("scheduleItems")
    if raw_items is None:
        raw_items = []
    if not isinstance(raw_items, list):
        return ScheduleResult.failed(ErrorCode.UPSTREAM_ERROR)
    items = {item for raw in raw_items if (item := minimize_item(raw, window)) is not None}
    return ScheduleResult(items=tuple(sorted(items)))


def minimize_item(raw: Any, window: Window) -> BusyItem | None:
    """Return the item's status over its UTC interval clipped to the window, or None if unusable."""
    if not isinstance(raw, dict):
        return None
    status_text = raw.get("status")
    if not isinstance(status_text, str):
        return None
    status = STATUS_BY_FOLDED.get(status_text.casefold())
    start = parse_graph_datetime(raw.get("start"))
    end = parse_graph_datetime(raw.get("end"))
    if status is None or start is None or end is None or not start < end:
        return None
    start, end = max(start, window.start), min(end, window.end)
    if not start < end:
        return None
    return BusyItem(start=start, end=end, status=status)


def parse_graph_datetime(value: Any) -> datetime | None:
    """Return the UTC instant of a Graph dateTimeTimeZone, or None when it cannot be placed."""
    if not isinstance(value, dict):
        return None
    text, zone_name = value.get("dateTime"), value.get("timeZone")
    if not isinstance(text, str) or len(text) > _MAX_DATETIME_LENGTH:
        return None
    if zone_name == "UTC" and _graph_shaped(text):
        # What we ask Graph for (Prefer: outlook.timezone="UTC"), read with an explicit offset:
        # datetime.replace(tzinfo=...) would cost several times the parse.
        try:
            return datetime.fromisoformat(f"{text[:26]}+00:00")
        except ValueError:
            return None
    local = _parse_iso(text)
    if local is None:
        return None
    if local.tzinfo is not None:
        # An explicit offset in dateTime is authoritative over the zone label.
        try:
            return local.astimezone(UTC)
        except OverflowError:  # e.g. 9999-12-31T23:00:00-12:00 is past datetime's range
            return None
    if not isinstance(zone_name, str):
        return None
    zone = resolve_zone(zone_name)
    if zone is None:
        return None
    try:
        return local.replace(tzinfo=zone).astimezone(UTC)
    except (OverflowError, ValueError):
        return None


def _graph_shaped(text: str) -> bool:
    """True for Graph's own spelling of a local date-time, 2026-03-16T09:00:00.0000000."""
    return len(text) == 27 and text[10] == "T" and text[19] == "." and text[20:].isdigit()


def _parse_iso(text: str) -> datetime | None:
    """Parse Graph's ISO 8601 date-time (up to 7 fractional digits), or return None."""
    if _graph_shaped(text):
        # fromisoformat reads Graph's own shape as it is.
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            return None
    head, dot, rest = text.partition(".")
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        if digits == 0:
            return None
        text = f"{head}.{rest[:digits][:6]:0<6}{rest[digits:]}"
    if "T" not in text.upper():
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is not None and parsed.utcoffset() is None:
        return None
    return parsed
