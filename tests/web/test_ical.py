"""The iCalendar feed: parsed by the icalendar library, ETags, and feed tokens."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from proxy.config.load import parse_settings
from proxy.config.schema import IcalSettings
from proxy.core.errors import ConfigError
from proxy.core.model import BusyItem, ScheduleResult, Status
from proxy.mock import MOCK_DOMAIN, RunningMock
from proxy.web.dialects.ical import default_window, etag_matches, feed_periods
from tests.support.dialects import DAY, DST_WEEK, merged, reference
from tests.support.feeds import FEED_TOKEN, ICS, parse_feed, with_feed
from tests.support.leaks import assert_no_leak
from tests.support.paths import ROOT
from tests.support.proxies import (
    KEY_ONE,
    ONE_ADDRESS,
    SECRETS_ENV,
    TEST_NOW,
    auth,
    start_proxy,
)

OTHER_ADDRESS = f"megan.bowen@{MOCK_DOMAIN}"


@pytest.fixture(autouse=True)
def _feed_token_never_logged(log_capture: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail the test if the feed token appears in any log line of any phase."""
    yield
    records = [r for when in ("setup", "call") for r in log_capture.get_records(when)]
    text = "\n".join(r.getMessage() for r in records) + log_capture.text
    assert FEED_TOKEN[4:] not in text


@pytest.fixture
def make_feed_proxy(aiohttp_client: Any, mock_graph: RunningMock) -> Any:
    """Proxies with a feed token for ONE_ADDRESS, logging access as `serve` does."""

    async def make(**ical: Any) -> TestClient[Any, Any]:
        return await start_proxy(aiohttp_client, with_feed(mock_graph, **ical))

    return make


@pytest.fixture
async def feed_proxy(make_feed_proxy: Any) -> TestClient[Any, Any]:
    """The proxy with a feed token for ONE_ADDRESS."""
    client: TestClient[Any, Any] = await make_feed_proxy()
    return client


def expected_periods(items: list[tuple[str, datetime, datetime]]) -> set[Any]:
    """What the feed must say for the JSON API's items under the default busy statuses."""
    kinds = {"BUSY": {"busy", "unknown"}, "BUSY-TENTATIVE": {"tentative"}}
    kinds["BUSY-UNAVAILABLE"] = {"oof"}
    return {(k, s, e) for k, statuses in kinds.items() for s, e in merged(items, statuses)}


async def test_icalendar_parses_the_feed_and_it_matches_the_json_api(
    proxy: TestClient[Any, Any], mock_graph: RunningMock
) -> None:
    """The feed is one UTC VFREEBUSY whose periods equal the JSON API's items, FBTYPE on each."""
    checked = 0
    for address in mock_graph.graph.organisation.addresses()[:8]:
        async with proxy.get(
            f"/v1/schedules/{address}/freebusy.ics", params=DST_WEEK, headers=auth()
        ) as resp:
            assert resp.status == 200
            assert resp.content_type == "text/calendar"
            body = await resp.read()
        assert_no_leak(body.decode())
        component, periods = parse_feed(body)
        assert str(component["organizer"]) == f"mailto:{address}"
        assert str(component["attendee"]) == f"mailto:{address}"
        assert component["dtstart"].dt == datetime(2026, 3, 6, tzinfo=UTC)
        assert component["dtend"].dt == datetime(2026, 3, 13, tzinfo=UTC)
        assert component["dtstamp"].dt.utcoffset() == timedelta(0)
        assert component["uid"]
        assert b"FBTYPE=" in body
        for line in body.decode().replace("\r\n ", "").splitlines():
            if line.startswith("FREEBUSY"):
                assert "FBTYPE=" in line
        expected = await reference(proxy, [address], DST_WEEK)
        assert periods == expected_periods(expected[address])
        checked += len(periods)
    assert checked > 10


async def test_etag_and_if_none_match(proxy: TestClient[Any, Any]) -> None:
    """Same data, same strong ETag (DTSTAMP aside); If-None-Match answers 304 with no body."""
    async with proxy.get(ICS, params=DAY, headers=auth()) as first:
        etag = first.headers["ETag"]
        assert etag.startswith('"')
    async with proxy.get(ICS, params=DAY, headers=auth()) as again:
        assert again.headers["ETag"] == etag
    headers = {**auth(), "If-None-Match": f'"other", {etag}'}
    async with proxy.get(ICS, params=DAY, headers=headers) as cached:
        assert cached.status == 304
        assert cached.headers["ETag"] == etag
        assert await cached.read() == b""
    other_day = {"start": "2026-03-17T00:00:00Z", "end": "2026-03-18T00:00:00Z"}
    async with proxy.get(
        ICS, params=other_day, headers={**auth(), "If-None-Match": etag}
    ) as changed:
        assert changed.status == 200
        assert changed.headers["ETag"] != etag


def test_etag_matching_rules() -> None:
    """If-None-Match uses weak comparison, lists, and *."""
    assert etag_matches('W/"a"', '"a"')
    assert etag_matches('"b", "a"', '"a"')
    assert etag_matches("*", '"a"')
    assert not etag_matches('"b"', '"a"')
    assert not etag_matches(None, '"a"')


async def test_feed_token_reads_its_address_only(
    feed_proxy: TestClient[Any, Any],
) -> None:
    """The token in the URL reads its own address (any case) and nothing else."""
    async with feed_proxy.get(ICS, params={**DAY, "token": FEED_TOKEN}) as resp:
        assert resp.status == 200
        assert resp.content_type == "text/calendar"
    upper = f"/v1/schedules/{ONE_ADDRESS.upper()}/freebusy.ics"
    async with feed_proxy.get(upper, params={**DAY, "token": FEED_TOKEN}) as resp:
        assert resp.status == 200
    other = f"/v1/schedules/{OTHER_ADDRESS}/freebusy.ics"
    async with feed_proxy.get(other, params={**DAY, "token": FEED_TOKEN}) as resp:
        assert resp.status == 401
        assert FEED_TOKEN not in await resp.text()
    async with feed_proxy.get(ICS, params={**DAY, "token": FEED_TOKEN + "x"}) as resp:
        assert resp.status == 401


async def test_access_log_names_the_route_not_the_address_or_token(
    feed_proxy: TestClient[Any, Any], log_capture: pytest.LogCaptureFixture
) -> None:
    """The access line of a feed request names method, route template and status: no address
    (it is in the path) and no token (in the query)."""
    async with feed_proxy.get(ICS, params={**DAY, "token": FEED_TOKEN}) as resp:
        assert resp.status == 200
    await feed_proxy.close()  # the access line is written once the response is done
    lines = [r.getMessage() for r in log_capture.records if r.name == "aiohttp.access"]
    assert any(line.startswith("GET /v1/schedules/{address}/freebusy.ics 200") for line in lines), (
        lines
    )
    assert not any("token" in line or ONE_ADDRESS in line for line in lines)


async def test_feed_token_works_on_no_other_route(feed_proxy: TestClient[Any, Any]) -> None:
    """As a bearer or a query parameter, the feed token opens no other endpoint."""
    bearer = {"Authorization": f"Bearer {FEED_TOKEN}"}
    availability = {"schedules": ONE_ADDRESS, **DAY}
    async with feed_proxy.get("/v1/availability", params=availability, headers=bearer) as resp:
        assert resp.status == 401
    async with feed_proxy.get(
        "/v1/availability", params={**availability, "token": FEED_TOKEN}
    ) as resp:
        assert resp.status == 401
    async with feed_proxy.get(ICS, params=DAY, headers=bearer) as resp:
        assert resp.status == 401
    graph_body = {
        "schedules": [ONE_ADDRESS],
        "startTime": {"dateTime": "2026-03-16T00:00:00", "timeZone": "UTC"},
        "endTime": {"dateTime": "2026-03-17T00:00:00", "timeZone": "UTC"},
    }
    for path in (
        f"/v1.0/users/{ONE_ADDRESS}/calendar/getSchedule",
        "/v1.0/me/calendar/getSchedule",
    ):
        async with feed_proxy.post(
            path, json=graph_body, headers=bearer, params={"token": FEED_TOKEN}
        ) as resp:
            assert resp.status == 401
    google_body = {"timeMin": DAY["start"], "timeMax": DAY["end"], "items": [{"id": ONE_ADDRESS}]}
    async with feed_proxy.post(
        "/calendar/v3/freeBusy", json=google_body, headers=bearer, params={"token": FEED_TOKEN}
    ) as resp:
        assert resp.status == 401


async def test_feed_token_and_key_together_are_refused(feed_proxy: TestClient[Any, Any]) -> None:
    """Sending both credentials is ambiguous and answered 400."""
    async with feed_proxy.get(ICS, params={**DAY, "token": FEED_TOKEN}, headers=auth()) as resp:
        assert resp.status == 400


async def test_feed_without_a_window_uses_default_days(make_feed_proxy: Any) -> None:
    """A subscribed calendar sends no start/end: the feed covers default_days from today."""
    proxy = await make_feed_proxy(default_days=3)
    before = TEST_NOW  # the app's wall clock (make_feed_proxy injects it)
    async with proxy.get(ICS, params={"token": FEED_TOKEN}) as resp:
        assert resp.status == 200
        component, _ = parse_feed(await resp.read())
    start, end = component["dtstart"].dt, component["dtend"].dt
    assert start == default_window(IcalSettings(default_days=3), now=before).start
    assert end - start == timedelta(days=3)


@pytest.mark.parametrize(
    "params",
    [
        {"start": DAY["start"]},
        {**DAY, "schedules": ONE_ADDRESS},
        {"start": "2026-03-16", "end": DAY["end"]},
        {"start": DAY["end"], "end": DAY["start"]},
    ],
)
async def test_bad_feed_requests_are_problems(
    proxy: TestClient[Any, Any], params: dict[str, str]
) -> None:
    """Half a window, unknown parameters or bad times are 400 problem documents."""
    async with proxy.get(ICS, params=params, headers=auth()) as resp:
        assert resp.status == 400
        assert resp.content_type == "application/problem+json"


async def test_feed_respects_the_allowlist_and_unknown_addresses(
    proxy: TestClient[Any, Any],
) -> None:
    """A key not allowed the address gets 403; an address Graph does not know gets 404."""
    other = f"/v1/schedules/{OTHER_ADDRESS}/freebusy.ics"
    async with proxy.get(other, params=DAY, headers=auth(KEY_ONE)) as resp:
        assert resp.status == 403
    missing = f"/v1/schedules/nobody@{MOCK_DOMAIN}/freebusy.ics"
    async with proxy.get(missing, params=DAY, headers=auth()) as resp:
        assert resp.status == 404
        assert (await resp.json())["code"] == "not_found"


def _item(start: str, end: str, status: Status) -> BusyItem:
    return BusyItem(
        start=datetime.fromisoformat(start).replace(tzinfo=UTC),
        end=datetime.fromisoformat(end).replace(tzinfo=UTC),
        status=status,
    )


def test_fbtype_mapping_and_working_elsewhere() -> None:
    """busy/unknown -> BUSY, tentative -> BUSY-TENTATIVE, oof -> BUSY-UNAVAILABLE, free omitted;
    workingElsewhere only when counted, with the configured FBTYPE."""
    result = ScheduleResult(
        items=(
            _item("2026-03-16T08:00", "2026-03-17T08:00", Status.OOF),
            _item("2026-03-16T09:00", "2026-03-16T10:00", Status.BUSY),
            _item("2026-03-16T10:00", "2026-03-16T11:00", Status.UNKNOWN),
            _item("2026-03-16T12:00", "2026-03-16T13:00", Status.FREE),
            _item("2026-03-16T13:00", "2026-03-16T14:00", Status.TENTATIVE),
            _item("2026-03-16T15:00", "2026-03-16T17:00", Status.WORKING_ELSEWHERE),
        )
    )
    default = {Status.BUSY, Status.OOF, Status.TENTATIVE, Status.UNKNOWN}
    periods = feed_periods(result, busy_statuses=default, working_elsewhere="BUSY-TENTATIVE")
    assert [(k, s.hour, e.hour) for k, s, e in periods] == [
        ("BUSY-UNAVAILABLE", 8, 8),
        ("BUSY", 9, 11),
        ("BUSY-TENTATIVE", 13, 14),
    ]
    counted = feed_periods(
        result,
        busy_statuses={Status.WORKING_ELSEWHERE},
        working_elsewhere="BUSY-UNAVAILABLE",
    )
    assert [(k, s.hour, e.hour) for k, s, e in counted] == [("BUSY-UNAVAILABLE", 15, 17)]


def test_new_feed_prints_a_token_whose_hash_and_snippet_validate() -> None:
    """`new-feed` prints a token, its SHA-256, the URL and a [[feeds]] entry that validates."""
    result = subprocess.run(
        [sys.executable, "-m", "proxy", "new-feed", "ceo@example.org", "--consumer", "app"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = dict(line.split(":", 1) for line in result.stdout.splitlines()[:3] if ":" in line)
    token = lines["token"].strip()
    assert token.startswith("fbf_")
    assert hashlib.sha256(token.encode()).hexdigest() == lines["token_sha256"].strip()
    assert (
        lines["feed URL"]
        .strip()
        .endswith(f"/v1/schedules/ceo@example.org/freebusy.ics?token={token}")
    )
    snippet = result.stdout[result.stdout.index("[[feeds]]") :].split("\n\n")[0]
    document = tomllib.loads(snippet)
    document.update(
        graph={"tenant_id": "t", "client_id": "c"},
        consumers=[{"name": "app", "key_sha256": "0" * 64, "allow": ["*@example.org"]}],
    )
    settings = parse_settings(document, environ=SECRETS_ENV, base_dir=ROOT)
    assert settings.feeds[0].token_sha256 == lines["token_sha256"].strip()
    assert token not in json.dumps(document)


@pytest.mark.parametrize(
    ("feed", "message"),
    [
        ({"consumer": "nobody"}, "feeds[0].consumer"),
        ({"address": "x@elsewhere.example"}, "feeds[0].address"),
        ({"address": "*@example.org"}, "feeds[0].address"),
        ({"token_sha256": "abc"}, "feeds[0].token_sha256"),
        ({"token_sha256": "0" * 64}, "feeds[0].token_sha256"),
        ({"extra": 1}, "feeds[0].extra"),
    ],
)
def test_feed_config_is_validated(feed: dict[str, Any], message: str) -> None:
    """Bad [[feeds]] entries are rejected naming the key."""
    entry = {"name": "f", "token_sha256": "1" * 64, "address": "a@example.org", "consumer": "app"}
    document = {
        "graph": {"tenant_id": "t", "client_id": "c"},
        "consumers": [{"name": "app", "key_sha256": "0" * 64, "allow": ["*@example.org"]}],
        "feeds": [{**entry, **feed}],
    }
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_settings(document, environ=SECRETS_ENV, base_dir=ROOT)


@pytest.mark.parametrize(
    ("ical", "message"),
    [
        ({"working_elsewhere": "FREE"}, "ical.working_elsewhere"),
        ({"default_days": 0}, "ical.default_days"),
    ],
)
def test_ical_config_is_validated(ical: dict[str, Any], message: str) -> None:
    """Bad [ical] values are rejected naming the key."""
    document = {"graph": {"tenant_id": "t", "client_id": "c"}, "ical": ical}
    with pytest.raises(ConfigError, match=message):
        parse_settings(document, environ=SECRETS_ENV, base_dir=ROOT)
