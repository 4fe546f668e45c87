"""The generated organisation: deterministic, varied, cheap at 10,000 mailboxes."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from proxy.mock import CANARY_PREFIX, MOCK_DOMAIN, MockGraph, MockSettings
from proxy.mock.calendar import LATEST_END
from proxy.mock.organisation import Organisation
from proxy.mock.timezones import format_graph_datetime, parse_graph_datetime, resolve_zone

MONTH_START = datetime(2026, 3, 2, tzinfo=UTC)
MONTH_END = MONTH_START + timedelta(days=28)


def _calendars(organisation: Organisation, count: int = 10) -> list[tuple[object, ...]]:
    return [
        (e.start, e.end, e.status, e.subject, e.location, e.is_private)
        for address in organisation.addresses()[:count]
        for e in organisation.events(address, MONTH_START, MONTH_END)
    ]


def test_same_seed_gives_the_same_organisation_and_calendars() -> None:
    """Two organisations with one seed are identical; another seed differs."""
    first, second = Organisation(size=40, seed=7), Organisation(size=40, seed=7)
    assert first.addresses() == second.addresses()
    assert _calendars(first) == _calendars(second)
    other = Organisation(size=40, seed=8)
    assert _calendars(first) != _calendars(other)


def test_mock_graph_exposes_the_organisation() -> None:
    """MockGraph builds the organisation from its settings; it starts like Microsoft's demo."""
    graph = MockGraph(MockSettings(org_size=40, seed=1))
    addresses = graph.organisation.addresses()
    assert len(addresses) == 40
    assert addresses[0] == "adele.vance@contoso.example"
    assert all(address.endswith("@" + MOCK_DOMAIN) for address in addresses)
    rooms = [a for a in addresses if a.startswith("room-")]
    assert len(rooms) == 4
    assert graph.organisation.lookup(addresses[0].upper()) is not None


def test_zones_mix_europe_america_and_asia() -> None:
    """People live in several zones, including DST zones in Europe and America."""
    zones = Counter(m.time_zone.split("/")[0] for m in Organisation(size=40, seed=1).people())
    assert zones["Europe"] > 0
    assert zones["America"] > 0
    assert zones["Asia"] > 0


def test_ten_thousand_mailboxes_are_cheap_and_unique() -> None:
    """A 10,000-mailbox organisation builds with unique addresses and answers lookups."""
    organisation = Organisation(size=10_000, seed=1)
    addresses = organisation.addresses()
    assert len(addresses) == len(set(addresses)) == 10_000
    last = organisation.lookup(addresses[-1])
    assert last is not None
    assert organisation.lookup_object_id(last.object_id) == last
    day = datetime(2026, 3, 16, tzinfo=UTC)
    assert organisation.events(addresses[-2], day, day + timedelta(days=1)) is not None


def test_calendars_have_every_kind_of_entry() -> None:
    """Over a month the organisation shows every status, all-day events and overnight ones."""
    organisation = Organisation(size=40, seed=1)
    events = [
        e
        for address in organisation.addresses()
        for e in organisation.events(address, MONTH_START, MONTH_END)
    ]
    statuses = Counter(e.status for e in events)
    assert set(statuses) == {"free", "tentative", "busy", "oof", "workingElsewhere", "unknown"}
    assert any(e.all_day for e in events)
    assert any(e.is_private for e in events)
    crossing = [
        e
        for mailbox in organisation.people()
        for e in organisation.events(mailbox.address, MONTH_START, MONTH_END)
        if not e.all_day
        and e.start.astimezone(ZoneInfo(mailbox.time_zone)).date()
        != e.end.astimezone(ZoneInfo(mailbox.time_zone)).date()
    ]
    assert crossing, "some events cross local midnight"
    for e in events:
        assert f"{CANARY_PREFIX}-subj-" in e.subject
        assert f"{CANARY_PREFIX}-loc-" in e.location


def test_weekends_are_mostly_free() -> None:
    """Far fewer events fall on weekends than on weekdays."""
    organisation = Organisation(size=40, seed=1)
    by_kind: Counter[bool] = Counter()
    for mailbox in organisation.people():
        zone = ZoneInfo(mailbox.time_zone)
        for e in organisation.events(mailbox.address, MONTH_START, MONTH_END):
            if not e.all_day:
                by_kind[e.start.astimezone(zone).weekday() >= 5] += 1
    assert by_kind[True] * 10 < by_kind[False]


def test_graph_datetimes_round_trip() -> None:
    """Seven-digit fractions, Windows names, IANA names and explicit offsets all read correctly."""
    pacific = resolve_zone("Pacific Standard Time")
    assert pacific == ZoneInfo("America/Los_Angeles")
    assert resolve_zone("w. europe standard time") == ZoneInfo("Europe/Berlin")
    assert resolve_zone("Not/AZone") is None
    instant = parse_graph_datetime("2026-03-15T05:00:00.0000000", pacific)
    assert instant == datetime(2026, 3, 15, 12, tzinfo=UTC)
    assert parse_graph_datetime("2026-03-15T12:00:00Z", pacific) == instant
    assert parse_graph_datetime("yesterday", pacific) is None
    assert format_graph_datetime(instant, ZoneInfo("UTC")) == "2026-03-15T12:00:00.0000000"
    assert format_graph_datetime(instant, ZoneInfo("Asia/Tokyo")) == "2026-03-15T21:00:00.0000000"
    assert date(2026, 3, 15) == instant.date()


def test_timed_events_end_soon_after_the_next_local_midnight() -> None:
    """No timed event runs past LATEST_END on the following day (events_between relies on it)."""
    organisation = Organisation(size=40, seed=3)
    for mailbox in organisation.mailboxes():
        zone = ZoneInfo(mailbox.time_zone)
        for e in organisation.events(mailbox.address, MONTH_START, MONTH_END):
            if e.all_day:
                continue
            next_midnight = datetime.combine(
                e.start.astimezone(zone).date() + timedelta(days=1), datetime.min.time(), zone
            )
            assert e.end <= next_midnight + LATEST_END
