"""The minimizer: only status/start/end survive, in UTC, inside the window."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from proxy.core.minimize import minimize, parse_graph_datetime
from proxy.core.model import BusyItem, ErrorCode, ScheduleResult, Status, Window

WINDOW = Window(
    start=datetime(2026, 3, 15, 0, tzinfo=UTC), end=datetime(2026, 3, 16, 0, tzinfo=UTC)
)


def dtz(text: str, zone: str = "UTC") -> dict[str, str]:
    """A Graph dateTimeTimeZone."""
    return {"dateTime": text, "timeZone": zone}


def item(status: str, start: Any, end: Any, **extra: Any) -> dict[str, Any]:
    """A Graph scheduleItem with the sensitive fields Graph may add."""
    return {
        "isPrivate": True,
        "status": status,
        "subject": "CANARY-subject",
        "location": "CANARY-location",
        "start": start,
        "end": end,
        **extra,
    }


def at(hour: int, minute: int = 0, day: int = 15) -> datetime:
    """An instant on 2026-03-<day> in UTC."""
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


def schedule(schedule_id: str, *items: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A Graph scheduleInformation."""
    return {
        "scheduleId": schedule_id,
        "availabilityView": "222",
        "scheduleItems": list(items),
        "workingHours": {"timeZone": {"name": "CANARY-workinghours"}},
        **extra,
    }


def test_only_status_start_end_survive() -> None:
    """Every sensitive field is dropped; the result has exactly status, start, end."""
    value = [
        schedule(
            "a@x.example",
            item("busy", dtz("2026-03-15T12:00:00.0000000"), dtz("2026-03-15T13:00:00.0000000")),
        )
    ]
    result = minimize(value, requested=["a@x.example"], window=WINDOW)
    assert result == {"a@x.example": ScheduleResult(items=(BusyItem(at(12), at(13), Status.BUSY),))}
    assert "CANARY" not in repr(result)


def test_windows_zone_converted_to_utc() -> None:
    """A Windows zone name is resolved, including daylight saving time on that date."""
    # 2026-03-15 is after the US DST change (March 8): Pacific is UTC-7.
    raw = item(
        "tentative",
        dtz("2026-03-15T09:00:00", "Pacific Standard Time"),
        dtz("2026-03-15T10:00:00", "Pacific Standard Time"),
    )
    result = minimize([schedule("a@x.example", raw)], requested=["a@x.example"], window=WINDOW)
    assert result["a@x.example"].items == (BusyItem(at(16), at(17), Status.TENTATIVE),)


def test_iana_zone_across_europe_dst_change() -> None:
    """Europe/Berlin 09:00 is 08:00Z before and 07:00Z after the last Sunday of March."""
    window = Window(start=at(0, day=27), end=at(0, day=31))
    before = item(
        "busy",
        dtz("2026-03-27T09:00:00", "Europe/Berlin"),
        dtz("2026-03-27T10:00:00", "Europe/Berlin"),
    )
    after = item(
        "busy",
        dtz("2026-03-30T09:00:00", "Europe/Berlin"),
        dtz("2026-03-30T10:00:00", "Europe/Berlin"),
    )
    result = minimize(
        [schedule("a@x.example", before, after)], requested=["a@x.example"], window=window
    )
    assert [i.start for i in result["a@x.example"].items] == [at(8, day=27), at(7, day=30)]


def test_explicit_offset_wins_over_zone_label() -> None:
    """A dateTime with an offset is placed by its offset."""
    assert parse_graph_datetime(dtz("2026-03-15T12:00:00+02:00", "Tokyo Standard Time")) == at(10)


@pytest.mark.parametrize(
    "bad",
    [
        {"dateTime": "2026-03-15T12:00:00", "timeZone": "Mars/Olympus_Mons"},
        {"dateTime": "2026-03-15T12:00:00"},
        {"dateTime": "15/03/2026 12:00", "timeZone": "UTC"},
        {"dateTime": "2026-03-15", "timeZone": "UTC"},
        {"dateTime": 1773576000, "timeZone": "UTC"},
        {"dateTime": "2026-03-15T12:00:00." + "0" * 100, "timeZone": "UTC"},
        "2026-03-15T12:00:00Z",
        None,
    ],
)
def test_unplaceable_times_are_none(bad: Any) -> None:
    """A time in an unknown zone, or malformed, is never guessed."""
    assert parse_graph_datetime(bad) is None


def test_items_clipped_to_window_and_outside_dropped() -> None:
    """Events returned whole are cut to the window; ones outside it vanish."""
    spanning = item("oof", dtz("2026-03-14T00:00:00"), dtz("2026-03-17T00:00:00"))
    outside = item("busy", dtz("2026-03-16T09:00:00"), dtz("2026-03-16T10:00:00"))
    touching = item("busy", dtz("2026-03-14T23:00:00"), dtz("2026-03-15T00:00:00"))
    result = minimize(
        [schedule("a@x.example", spanning, outside, touching)],
        requested=["a@x.example"],
        window=WINDOW,
    )
    assert result["a@x.example"].items == (BusyItem(WINDOW.start, WINDOW.end, Status.OOF),)


def test_all_day_event_at_utc_midnight() -> None:
    """An all-day event Graph reports at UTC midnight covers exactly the day."""
    all_day = item("busy", dtz("2026-03-15T00:00:00.0000000"), dtz("2026-03-16T00:00:00.0000000"))
    result = minimize([schedule("a@x.example", all_day)], requested=["a@x.example"], window=WINDOW)
    assert result["a@x.example"].items == (BusyItem(at(0), at(0, day=16), Status.BUSY),)


@pytest.mark.parametrize(
    "raw",
    [
        item("busy", dtz("2026-03-15T13:00:00"), dtz("2026-03-15T12:00:00")),
        item("busy", dtz("2026-03-15T12:00:00"), dtz("2026-03-15T12:00:00")),
        item("busy", None, dtz("2026-03-15T12:00:00")),
        item("maybe", dtz("2026-03-15T12:00:00"), dtz("2026-03-15T13:00:00")),
        item(None, dtz("2026-03-15T12:00:00"), dtz("2026-03-15T13:00:00")),
        "busy",
        None,
    ],
)
def test_malformed_items_dropped(raw: Any) -> None:
    """Missing times, end not after start, unknown status, or a non-object: dropped."""
    result = minimize([schedule("a@x.example", raw)], requested=["a@x.example"], window=WINDOW)
    assert result["a@x.example"] == ScheduleResult(items=())


def test_status_case_is_normalised() -> None:
    """Graph's docs show "Busy" and "workingElsewhere"; both map to the canonical spelling."""
    raws = [
        item("Busy", dtz("2026-03-15T08:00:00"), dtz("2026-03-15T09:00:00")),
        item("WORKINGELSEWHERE", dtz("2026-03-15T10:00:00"), dtz("2026-03-15T11:00:00")),
    ]
    result = minimize([schedule("a@x.example", *raws)], requested=["a@x.example"], window=WINDOW)
    assert [i.status for i in result["a@x.example"].items] == [
        Status.BUSY,
        Status.WORKING_ELSEWHERE,
    ]


def test_schedule_ids_matched_case_insensitively_and_unrequested_ignored() -> None:
    """Results map back by scheduleId ignoring case; nobody-asked-for schedules never appear."""
    busy = item("busy", dtz("2026-03-15T08:00:00"), dtz("2026-03-15T09:00:00"))
    value = [schedule("Adele@X.example", busy), schedule("stranger@x.example", busy)]
    result = minimize(value, requested=["adele@x.example"], window=WINDOW)
    assert set(result) == {"adele@x.example"}
    assert len(result["adele@x.example"].items) == 1


def test_duplicate_schedule_id_first_wins() -> None:
    """A second answer for the same address cannot add items."""
    first = schedule(
        "a@x.example", item("busy", dtz("2026-03-15T08:00:00"), dtz("2026-03-15T09:00:00"))
    )
    second = schedule(
        "A@x.example", item("oof", dtz("2026-03-15T00:00:00"), dtz("2026-03-16T00:00:00"))
    )
    result = minimize([first, second], requested=["a@x.example"], window=WINDOW)
    assert [i.status for i in result["a@x.example"].items] == [Status.BUSY]


def test_per_schedule_errors_become_codes() -> None:
    """5009 is not_found, anything else upstream_error, a missing answer upstream_error; no text."""
    value = [
        {
            "scheduleId": "gone@x.example",
            "error": {"message": "CANARY-err gone@x.example", "responseCode": "5009"},
        },
        {"scheduleId": "odd@x.example", "error": {"message": "CANARY-err", "responseCode": "9999"}},
    ]
    result = minimize(
        value, requested=["gone@x.example", "odd@x.example", "silent@x.example"], window=WINDOW
    )
    assert result == {
        "gone@x.example": ScheduleResult.failed(ErrorCode.NOT_FOUND),
        "odd@x.example": ScheduleResult.failed(ErrorCode.UPSTREAM_ERROR),
        "silent@x.example": ScheduleResult.failed(ErrorCode.UPSTREAM_ERROR),
    }


@pytest.mark.parametrize("value", [None, {}, "x", 3, [None, 1, "s", []], [{"scheduleId": 5}]])
def test_garbage_value_fails_every_schedule_without_raising(value: Any) -> None:
    """A response that is not a list of objects yields upstream_error for each address."""
    result = minimize(value, requested=["a@x.example"], window=WINDOW)
    assert result == {"a@x.example": ScheduleResult.failed(ErrorCode.UPSTREAM_ERROR)}


def test_items_sorted_and_deduplicated() -> None:
    """Identical items collapse; order is by start time."""
    late = item("busy", dtz("2026-03-15T15:00:00"), dtz("2026-03-15T16:00:00"))
    early = item("free", dtz("2026-03-15T08:00:00"), dtz("2026-03-15T09:00:00"))
    result = minimize(
        [schedule("a@x.example", late, early, late)], requested=["a@x.example"], window=WINDOW
    )
    assert [i.start for i in result["a@x.example"].items] == [at(8), at(15)]
