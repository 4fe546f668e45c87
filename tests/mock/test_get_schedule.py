"""getSchedule answers in Graph's shape and enforces Graph's rules."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from proxy.mock import CANARY_PREFIX, RunningMock
from proxy.mock.calendar import CalendarEvent
from tests.support.mock_graph import open_session, post_schedule, schedule_body

GRAPH_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{7}$")
ITEM_KEYS = {"isPrivate", "status", "subject", "location", "start", "end"}
STATUSES = {"free", "tentative", "busy", "oof", "workingElsewhere", "unknown"}


def _utc(text: str) -> datetime:
    """Parse a Graph dateTime that is known to be in UTC."""
    return datetime.fromisoformat(text[:26]).replace(tzinfo=UTC)


def _find_event(
    mock: RunningMock, predicate: Any, *, start: date = date(2026, 3, 2), days: int = 120
) -> tuple[str, CalendarEvent]:
    """Return the first (address, event) of the organisation for which ``predicate`` holds."""
    organisation = mock.graph.organisation
    first = datetime.combine(start, datetime.min.time(), tzinfo=UTC)
    for address in organisation.addresses():
        for event in organisation.events(address, first, first + timedelta(days=days)):
            if predicate(address, event):
                return address, event
    raise AssertionError("the generated organisation lacks such an event")


async def test_success_has_graphs_exact_shape(
    mock: RunningMock, session: aiohttp.ClientSession
) -> None:
    """One scheduleInformation per address with six-field items, view digits and working hours."""
    addresses = mock.graph.organisation.addresses()[:3]
    status, headers, body = await post_schedule(session, mock, schedule_body(addresses))
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    assert body["@odata.context"].endswith("#Collection(microsoft.graph.scheduleInformation)")
    assert [info["scheduleId"] for info in body["value"]] == addresses
    for info in body["value"]:
        assert set(info) == {"scheduleId", "availabilityView", "scheduleItems", "workingHours"}
        assert re.fullmatch(r"[0-3]{24}", info["availabilityView"])
        for item in info["scheduleItems"]:
            assert set(item) == ITEM_KEYS
            assert item["status"] in STATUSES
            assert isinstance(item["isPrivate"], bool)
            for edge in ("start", "end"):
                assert GRAPH_DATETIME.match(item[edge]["dateTime"])
                assert item[edge]["timeZone"] == "UTC"
        hours = info["workingHours"]
        assert hours["daysOfWeek"] == ["monday", "tuesday", "wednesday", "thursday", "friday"]
        assert GRAPH_DATETIME.match("2026-01-01T" + hours["startTime"])


async def test_every_free_text_field_carries_a_canary(
    mock: RunningMock, session: aiohttp.ClientSession
) -> None:
    """Subjects, locations and working-hours zone names all carry distinct canaries."""
    addresses = mock.graph.organisation.addresses()[:20]
    body = schedule_body(addresses, "2026-03-16T00:00:00", "2026-03-21T00:00:00")
    status, _, answer = await post_schedule(session, mock, body)
    assert status == 200
    seen: list[str] = []
    for info in answer["value"]:
        assert CANARY_PREFIX + "-" in info["workingHours"]["timeZone"]["name"]
        for item in info["scheduleItems"]:
            for field in ("subject", "location"):
                found = re.findall(CANARY_PREFIX + r"-\w+-[0-9a-f]{12}", item[field])
                assert len(found) == 1, item[field]
                seen.extend(found)
    assert len(seen) > 50
    assert len(seen) == len(set(seen))
    assert any(item["isPrivate"] for info in answer["value"] for item in info["scheduleItems"])


@pytest.mark.parametrize("address", ["nobody@contoso.example", "adele.vance@fabrikam.example"])
async def test_unknown_addresses_fail_inside_the_200(
    mock: RunningMock, session: aiohttp.ClientSession, address: str
) -> None:
    """Unresolvable addresses get error 5009 in their own entry, with no items."""
    known = mock.graph.organisation.addresses()[0]
    status, _, body = await post_schedule(session, mock, schedule_body([address, known]))
    assert status == 200
    failed, ok = body["value"]
    assert failed == {"scheduleId": address, "error": failed["error"]}
    assert failed["error"]["responseCode"] == "5009"
    assert failed["error"]["message"].startswith(f"Unable to resolve e-mail address {address} ")
    assert CANARY_PREFIX + "-" in failed["error"]["message"]
    assert "scheduleItems" in ok


async def test_parameter_names_are_case_insensitive(
    mock: RunningMock, session: aiohttp.ClientSession
) -> None:
    """PascalCase (as the SDK sends) and a string interval answer the same as camelCase."""
    addresses = mock.graph.organisation.addresses()[:2]
    camel = schedule_body(addresses, interval=15)
    pascal = {
        "Schedules": addresses,
        "StartTime": {"DateTime": "2026-03-16T00:00:00", "TimeZone": "UTC"},
        "EndTime": {"DateTime": "2026-03-17T00:00:00", "TimeZone": "UTC"},
        "AvailabilityViewInterval": "15",
    }
    _, _, first = await post_schedule(session, mock, camel)
    status, _, second = await post_schedule(session, mock, pascal)
    assert status == 200
    assert first == second
    assert len(second["value"][0]["availabilityView"]) == 96


async def test_interval_defaults_to_thirty_minutes(
    mock: RunningMock, session: aiohttp.ClientSession
) -> None:
    """Without availabilityViewInterval a day has 48 view digits."""
    address = mock.graph.organisation.addresses()[0]
    _, _, body = await post_schedule(session, mock, schedule_body([address], interval=...))
    assert len(body["value"][0]["availabilityView"]) == 48


async def test_more_than_twenty_schedules_is_a_counted_breach(
    mock: RunningMock, session: aiohttp.ClientSession
) -> None:
    """21 schedules get 400 and count as a too_many_schedules breach; 20 are fine."""
    addresses = mock.graph.organisation.addresses()
    status, _, _ = await post_schedule(session, mock, schedule_body(addresses[:20]))
    assert status == 200
    status, _, body = await post_schedule(session, mock, schedule_body(addresses[:21]))
    assert status == 400
    assert set(body["error"]) == {"code", "message", "innerError"}
    assert {"request-id", "date"} <= body["error"]["innerError"].keys()
    stats = mock.graph.stats()
    assert stats["breaches"]["too_many_schedules"] == 1
    assert stats["schedules_requested"] == 41


async def test_windows_of_62_days_are_refused_and_counted(
    mock: RunningMock, session: aiohttp.ClientSession
) -> None:
    """A 62-day window is a 400 and a breach; 61 days is allowed; end before start is a 400."""
    address = mock.graph.organisation.addresses()[0]
    long = schedule_body([address], "2026-01-01T00:00:00", "2026-03-04T00:00:00", interval=1440)
    status, _, _ = await post_schedule(session, mock, long)
    assert status == 400
    allowed = schedule_body([address], "2026-01-01T00:00:00", "2026-03-03T00:00:00", interval=1440)
    status, _, body = await post_schedule(session, mock, allowed)
    assert status == 200
    assert len(body["value"][0]["availabilityView"]) == 61
    backwards = schedule_body([address], "2026-01-02T00:00:00", "2026-01-01T00:00:00")
    status, _, _ = await post_schedule(session, mock, backwards)
    assert status == 400
    assert mock.graph.stats()["breaches"]["window_too_long"] == 1


@pytest.mark.parametrize(
    ("interval", "expected"),
    [(4, 400), (5, 200), (1440, 200), (1441, 400), (True, 400), ("x", 400), (None, 500)],
)
async def test_interval_bounds(
    mock: RunningMock, session: aiohttp.ClientSession, interval: Any, expected: int
) -> None:
    """The interval must be 5..1440 minutes; an explicit null is a 500, as on Graph."""
    address = mock.graph.organisation.addresses()[0]
    status, _, _ = await post_schedule(session, mock, schedule_body([address], interval=interval))
    assert status == expected


async def test_unreadable_bodies_and_zones_are_400(
    mock: RunningMock, session: aiohttp.ClientSession
) -> None:
    """Bodies that are not objects, empty schedule lists and unknown zones are refused."""
    address = mock.graph.organisation.addresses()[0]
    bodies: list[Any] = [[1, 2], {"schedules": []}, schedule_body([address], zone="Mars/Nowhere")]
    for body in bodies:
        status, _, answer = await post_schedule(session, mock, body)
        assert status == 400, body
        assert "code" in answer["error"]


async def test_prefer_header_converts_every_time(
    mock: RunningMock, session: aiohttp.ClientSession
) -> None:
    """With Prefer outlook.timezone the same instants come back as local times labelled so."""
    address = mock.graph.organisation.addresses()[0]
    body = schedule_body([address], "2026-03-16T00:00:00", "2026-03-19T00:00:00")
    _, _, utc = await post_schedule(session, mock, body)
    for zone_name, iana in (
        ("W. Europe Standard Time", "Europe/Berlin"),
        ("Asia/Tokyo", "Asia/Tokyo"),
    ):
        prefer = {"Prefer": f'outlook.timezone="{zone_name}"'}
        _, _, local = await post_schedule(session, mock, body, headers=prefer)
        utc_items = utc["value"][0]["scheduleItems"]
        local_items = local["value"][0]["scheduleItems"]
        assert len(utc_items) == len(local_items) > 0
        for plain, converted in zip(utc_items, local_items, strict=True):
            for edge in ("start", "end"):
                assert converted[edge]["timeZone"] == zone_name
                as_local = datetime.fromisoformat(converted[edge]["dateTime"][:26]).replace(
                    tzinfo=ZoneInfo(iana)
                )
                assert as_local == _utc(plain[edge]["dateTime"])
        assert local["value"][0]["availabilityView"] == utc["value"][0]["availabilityView"]
    assert mock.graph.stats()["recent"][-1]["prefer_tz"] == "Asia/Tokyo"


async def test_request_windows_in_windows_zones_are_read_in_that_zone(
    mock: RunningMock, session: aiohttp.ClientSession
) -> None:
    """A window given in Pacific Standard Time covers the same instants as its UTC equivalent."""
    address = mock.graph.organisation.addresses()[0]
    pacific = schedule_body(
        [address], "2026-03-16T00:00:00", "2026-03-17T00:00:00", zone="Pacific Standard Time"
    )
    utc = schedule_body([address], "2026-03-16T07:00:00.0000000", "2026-03-17T07:00:00.0000000")
    _, _, first = await post_schedule(session, mock, pacific)
    _, _, second = await post_schedule(session, mock, utc)
    assert first == second


async def test_overlapping_events_are_returned_whole(
    mock: RunningMock, session: aiohttp.ClientSession
) -> None:
    """An event that starts before and ends after the window comes back with its own times."""
    address, event = _find_event(
        mock, lambda _, e: e.end - e.start >= timedelta(hours=1) and not e.all_day
    )
    start = event.start + timedelta(minutes=10)
    body = schedule_body(
        [address],
        start.strftime("%Y-%m-%dT%H:%M:%S"),
        (start + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%S"),
        interval=5,
    )
    _, _, answer = await post_schedule(session, mock, body)
    items = answer["value"][0]["scheduleItems"]
    assert any(
        _utc(item["start"]["dateTime"]) == event.start
        and _utc(item["end"]["dateTime"]) == event.end
        for item in items
    )
    assert all(_utc(item["start"]["dateTime"]) < start + timedelta(minutes=10) for item in items)


async def test_all_day_events_sit_at_utc_midnight(
    mock: RunningMock, session: aiohttp.ClientSession
) -> None:
    """An all-day event spans UTC midnight to UTC midnight, whatever the zone of the mailbox."""
    address, event = _find_event(mock, lambda _, e: e.all_day)
    day = event.start.date()
    body = schedule_body([address], f"{day}T06:00:00", f"{day}T07:00:00")
    _, _, answer = await post_schedule(session, mock, body)
    spans = [
        (i["start"]["dateTime"], i["end"]["dateTime"], i["status"])
        for i in answer["value"][0]["scheduleItems"]
    ]
    assert (
        f"{day}T00:00:00.0000000",
        f"{day + timedelta(days=1)}T00:00:00.0000000",
        event.status,
    ) in spans


async def test_a_weekly_local_meeting_moves_in_utc_across_dst(
    mock: RunningMock, session: aiohttp.ClientSession
) -> None:
    """A weekly meeting at fixed Berlin wall time is one hour earlier in UTC after 29 March 2026."""
    organisation = mock.graph.organisation
    berliner = next(m for m in organisation.people() if m.time_zone == "Europe/Berlin")
    zone = ZoneInfo("Europe/Berlin")
    before_start = datetime(2026, 3, 23, tzinfo=UTC)
    window = timedelta(days=5)
    before = [
        e
        for e in organisation.events(berliner.address, before_start, before_start + window)
        if e.series == "weekly-0"
    ]
    after_start = before_start + timedelta(days=7)
    after = [
        e
        for e in organisation.events(berliner.address, after_start, after_start + window)
        if e.series == "weekly-0"
    ]
    assert len(before) == len(after) == 1
    assert before[0].start.astimezone(zone).time() == after[0].start.astimezone(zone).time()
    assert after[0].start - before[0].start == timedelta(days=7, hours=-1)
    for event in (before[0], after[0]):
        day = event.start.date()
        body = schedule_body(
            [berliner.address], f"{day}T00:00:00", f"{day + timedelta(days=1)}T00:00:00"
        )
        _, _, answer = await post_schedule(session, mock, body)
        starts = {_utc(i["start"]["dateTime"]) for i in answer["value"][0]["scheduleItems"]}
        assert event.start in starts


async def test_availability_view_takes_the_strongest_status(
    mock: RunningMock, session: aiohttp.ClientSession
) -> None:
    """A whole-day interval shows 3 on an out-of-office day and 2 on a day with a busy meeting."""
    address, event = _find_event(mock, lambda _, e: e.status == "oof")
    day = event.start.date()
    body = schedule_body(
        [address], f"{day}T00:00:00", f"{day + timedelta(days=1)}T00:00:00", interval=1440
    )
    _, _, answer = await post_schedule(session, mock, body)
    assert answer["value"][0]["availabilityView"] == "3"


async def test_missing_or_bad_tokens_get_401(
    mock: RunningMock, session: aiohttp.ClientSession
) -> None:
    """No token, a garbage token and a token signed with a rotated key all get 401."""
    address = mock.graph.organisation.addresses()[0]
    url = f"{mock.graph_base_url}/users/{address}/calendar/getSchedule"
    async with session.post(url, json=schedule_body([address])) as response:
        body = await response.json()
    assert response.status == 401
    assert body["error"]["code"] == "InvalidAuthenticationToken"
    status, _, body = await post_schedule(
        session, mock, schedule_body([address]), token="not.a.jwt"
    )
    assert (status, body["error"]["code"]) == (401, "InvalidAuthenticationToken")
    old = mock.graph.issue_app_token()
    mock.graph.tokens.rotate_key()
    status, _, _ = await post_schedule(session, mock, schedule_body([address]), token=old)
    assert status == 401


async def test_a_token_without_calendar_roles_gets_403(mock_factory: Any) -> None:
    """An app token with only User.Read is authenticated but not allowed: ErrorAccessDenied."""
    mock = await mock_factory(app_roles=("User.Read",))
    async with open_session(mock) as session:
        address = mock.graph.organisation.addresses()[0]
        status, _, body = await post_schedule(session, mock, schedule_body([address]))
    assert status == 403
    assert body["error"]["code"] == "ErrorAccessDenied"


async def test_me_needs_a_delegated_token(
    mock: RunningMock, session: aiohttp.ClientSession
) -> None:
    """/me/calendar/getSchedule with an app-only token is a 400, as on Graph."""
    address = mock.graph.organisation.addresses()[0]
    url = f"{mock.graph_base_url}/me/calendar/getSchedule"
    headers = {"Authorization": f"Bearer {mock.graph.issue_app_token()}"}
    async with session.post(url, json=schedule_body([address]), headers=headers) as response:
        body = await response.json()
    assert response.status == 400
    assert "delegated authentication flow" in body["error"]["message"]


async def test_unknown_url_mailboxes_are_404_and_object_ids_work(
    mock: RunningMock, session: aiohttp.ClientSession
) -> None:
    """The {id} must be a user of the tenant, by address (any case) or by object id."""
    first = mock.graph.organisation.mailboxes()[0]
    body = schedule_body([first.address])
    status, _, answer = await post_schedule(session, mock, body, mailbox="ghost@contoso.example")
    assert (status, answer["error"]["code"]) == (404, "ErrorInvalidUser")
    for name in (first.address.upper(), first.object_id):
        status, _, _ = await post_schedule(session, mock, body, mailbox=name)
        assert status == 200


async def test_unknown_graph_paths_answer_in_graphs_shape(
    mock: RunningMock, session: aiohttp.ClientSession
) -> None:
    """A URL the mock does not serve under /v1.0 gets Graph's JSON error, not plain text."""
    async with session.get(f"{mock.graph_base_url}/users/x/events") as response:
        body = json.loads(await response.text())
    assert response.status == 400
    assert body["error"]["code"] == "BadRequest"


async def test_recent_requests_are_recorded(
    mock: RunningMock, session: aiohttp.ClientSession
) -> None:
    """GET /_mock/stats lists each getSchedule call with its mailbox, window and status."""
    address = mock.graph.organisation.addresses()[1]
    await post_schedule(session, mock, schedule_body([address], interval=15), mailbox=address)
    async with session.get(f"{mock.url}/_mock/stats") as response:
        stats = await response.json()
    assert stats == mock.graph.stats()
    assert stats["calls"]["getSchedule"] == 1
    assert stats["recent"] == [
        {
            "mailbox": address,
            "schedules": [address],
            "start": "2026-03-16T00:00:00Z",
            "end": "2026-03-17T00:00:00Z",
            "interval": 15,
            "prefer_tz": None,
            "status": 200,
        }
    ]
