"""The minimizer: Graph scheduleInformation in, status/start/end out, nothing else.

Output is built only from the allowed fields. Nothing from an upstream object is copied
wholesale, so a key Graph adds tomorrow cannot reach a consumer.

``decode_answer`` reads getSchedule's bytes: in the usual shape, straight into structs of the
allowed fields (a subject or location is never even decoded); in any other shape as plain
JSON, which ``minimize`` judges value by value. Both give the same results.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec

from proxy.core.model import STATUS_BY_FOLDED, BusyItem, ErrorCode, ScheduleResult, Window
from proxy.core.zones import resolve_zone

# Graph's responseCode for an address it cannot resolve.
_NOT_FOUND_CODES = frozenset({"5009", "ErrorMailboxNotFound", "ErrorInvalidUser"})
_MAX_DATETIME_LENGTH = 40
# Graph's UTC spellings already read (items of many mailboxes share their times): the same
# datetime object for each, read once. Emptied when full.
_UTC_KEPT = 16_384
_UTC_READ: dict[str, datetime] = {}


class _When(msgspec.Struct):
    """dateTimeTimeZone: the two fields read (Graph's names)."""

    dateTime: str
    timeZone: str | None = None


class _Item(msgspec.Struct):
    """scheduleItem: the three fields read."""

    status: str
    start: _When
    end: _When


class _Error(msgspec.Struct):
    """freeBusyError: the one field read."""

    responseCode: str | int | None = None


class _Schedule(msgspec.Struct):
    """scheduleInformation: the fields read."""

    scheduleId: str
    scheduleItems: list[_Item] | None = None
    error: _Error | None = None


class GraphAnswer(msgspec.Struct):
    """getSchedule's answer in the usual shape, reduced to what is read."""

    value: list[_Schedule] | None = None


_DECODE = msgspec.json.Decoder(GraphAnswer).decode


def decode_answer(raw: bytes | bytearray) -> GraphAnswer | Any:
    """getSchedule's body: a GraphAnswer in the usual shape, else the JSON value as parsed;
    ValueError when it is not JSON at all."""
    try:
        return _DECODE(raw)
    except msgspec.MsgspecError:
        return json.loads(raw)


def minimize_answer(
    answer: GraphAnswer | Any, *, requested: Iterable[str], window: Window
) -> dict[str, ScheduleResult]:
    """minimize() of what decode_answer read: the same results for the same body."""
    if not isinstance(answer, GraphAnswer):
        value = answer.get("value") if isinstance(answer, dict) else None
        return minimize(value, requested=requested, window=window)
    wanted = {address.casefold() for address in requested}
    results: dict[str, ScheduleResult] = {}
    for entry in answer.value or ():
        key = entry.scheduleId.casefold()
        if key not in wanted or key in results:
            continue
        error = entry.error
        if error is not None:
            code = error.responseCode
            found = code is None or str(code) not in _NOT_FOUND_CODES
            results[key] = ScheduleResult.failed(
                ErrorCode.UPSTREAM_ERROR if found else ErrorCode.NOT_FOUND
            )
            continue
        items = set()
        for raw in entry.scheduleItems or ():
            status = STATUS_BY_FOLDED.get(raw.status.casefold())
            start = _instant(raw.start.dateTime, raw.start.timeZone)
            end = _instant(raw.end.dateTime, raw.end.timeZone)
            if status is None or start is None or end is None or not start < end:
                continue
            start, end = max(start, window.start), min(end, window.end)
            if start < end:
                items.add(BusyItem(start, end, status))
        results[key] = ScheduleResult(items=tuple(sorted(items)))
    for key in wanted - results.keys():
        results[key] = ScheduleResult.failed(ErrorCode.UPSTREAM_ERROR)
    return results


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
    text = value.get("dateTime")
    if not isinstance(text, str):
        return None
    return _instant(text, value.get("timeZone"))


def _instant(text: str, zone_name: Any) -> datetime | None:
    """The UTC instant of a dateTime in a zone (any value), or None when it cannot be placed."""
    if len(text) > _MAX_DATETIME_LENGTH:
        return None
    if zone_name == "UTC" and _graph_shaped(text):
        # What we ask Graph for (Prefer: outlook.timezone="UTC").
        found = _UTC_READ.get(text)
        if found is not None:
            return found
        try:
            # Read with an explicit offset: datetime.replace(tzinfo=...) costs several times
            # the parse.
            found = datetime.fromisoformat(f"{text[:26]}+00:00")
        except ValueError:
            return None
        if len(_UTC_READ) >= _UTC_KEPT:
            _UTC_READ.clear()
        _UTC_READ[text] = found
        return found
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
