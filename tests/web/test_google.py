"""Google freeBusy: google-api-python-client, unmodified, with api_endpoint at the proxy."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import google_auth_httplib2
import httplib2
import pytest
from aiohttp.test_utils import TestClient
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from proxy.config.schema import ConsumerSettings
from proxy.core.intervals import busy_periods
from proxy.core.model import BusyItem, Status
from proxy.core.policy import Policy
from proxy.core.timefmt import parse_rfc3339
from proxy.mock import MOCK_DOMAIN, Fault, RunningMock
from tests.support.dialects import DAY, DST_WEEK, merged, reference
from tests.support.leaks import assert_no_leak
from tests.support.mock_graph import MockFactory
from tests.support.proxies import KEY_ALL, KEY_ONE, ONE_ADDRESS, ProxyFactory, auth, proxy_settings

DEFAULT_BUSY = {"busy", "oof", "tentative", "unknown"}
GOOGLE_ERROR_KEYS = {"code", "message", "errors", "status"}

Query = Callable[..., Any]


@pytest.fixture
def google_query(proxy: TestClient[Any, Any]) -> Iterator[Callable[..., Any]]:
    """Run freebusy().query(body).execute() with the real client, in a thread (it is sync)."""
    opened: list[google_auth_httplib2.AuthorizedHttp] = []

    async def query(body: dict[str, Any], key: str = KEY_ALL) -> Any:
        # An API key cannot be refreshed: let a 401 surface as HttpError instead of a refresh.
        http = google_auth_httplib2.AuthorizedHttp(
            Credentials(token=key), http=httplib2.Http(), refresh_status_codes=()
        )
        opened.append(http)
        endpoint = f"http://{proxy.server.host}:{proxy.server.port}/calendar/v3/"

        def call() -> Any:
            service = build(
                "calendar",
                "v3",
                http=http,
                static_discovery=True,
                client_options={"api_endpoint": endpoint},
            )
            return service.freebusy().query(body=body).execute()

        return await asyncio.to_thread(call)

    yield query
    for http in opened:
        http.close()


def spans(busy: list[dict[str, str]]) -> list[tuple[datetime, datetime]]:
    """Google busy periods as UTC instants."""
    return [(parse_rfc3339(b["start"]), parse_rfc3339(b["end"])) for b in busy]


async def test_client_query_matches_the_json_api(
    google_query: Query, proxy: TestClient[Any, Any], mock_graph: RunningMock
) -> None:
    """freebusy().query() gets merged busy periods equal to the JSON API's, per calendar."""
    addresses = mock_graph.graph.organisation.addresses()[:6]
    body = {
        "timeMin": DST_WEEK["start"],
        "timeMax": DST_WEEK["end"],
        "items": [{"id": a} for a in addresses],
    }
    result = await google_query(body)
    assert_no_leak(json.dumps(result))
    assert result["kind"] == "calendar#freeBusy"
    assert (result["timeMin"], result["timeMax"]) == (DST_WEEK["start"], DST_WEEK["end"])
    assert list(result["calendars"]) == addresses
    expected = await reference(proxy, addresses, DST_WEEK)
    total = 0
    for address in addresses:
        calendar = result["calendars"][address]
        assert set(calendar) == {"busy"}
        for period in calendar["busy"]:
            assert set(period) == {"start", "end"}
        total += len(calendar["busy"])
        assert spans(calendar["busy"]) == merged(expected[address], DEFAULT_BUSY)
    assert total > 10


async def test_per_calendar_not_found(google_query: Query) -> None:
    """An address Graph does not know is a per-calendar notFound error inside the 200."""
    missing = f"nobody@{MOCK_DOMAIN}"
    result = await google_query(
        {"timeMin": DAY["start"], "timeMax": DAY["end"], "items": [{"id": missing}]}
    )
    assert result["calendars"][missing] == {
        "errors": [{"domain": "global", "reason": "notFound"}],
        "busy": [],
    }


@pytest.mark.parametrize(
    ("key", "address", "status", "reason"),
    [
        ("fbp_not-a-valid-key", ONE_ADDRESS, 401, "authError"),
        (KEY_ONE, f"megan.bowen@{MOCK_DOMAIN}", 403, "forbidden"),
    ],
)
async def test_client_sees_google_errors(
    google_query: Query, key: str, address: str, status: int, reason: str
) -> None:
    """401 and 403 reach the client as HttpError with Google's reason."""
    with pytest.raises(HttpError) as caught:
        await google_query(
            {"timeMin": DAY["start"], "timeMax": DAY["end"], "items": [{"id": address}]}, key
        )
    assert caught.value.resp.status == status
    assert caught.value.error_details[0]["reason"] == reason
    assert "CANARY" not in caught.value.content.decode()


async def test_time_zone_is_honoured(
    google_query: Query, proxy: TestClient[Any, Any], mock_graph: RunningMock
) -> None:
    """With timeZone the periods carry that zone's offset; the instants do not change."""
    address = mock_graph.graph.organisation.addresses()[1]
    body = {"timeMin": DAY["start"], "timeMax": DAY["end"], "items": [{"id": address}]}
    utc = await google_query(body)
    local = await google_query({**body, "timeZone": "America/New_York"})
    utc_busy = utc["calendars"][address]["busy"]
    local_busy = local["calendars"][address]["busy"]
    assert utc_busy
    assert spans(utc_busy) == spans(local_busy)
    assert all(p["start"].endswith("-04:00") for p in local_busy)


async def google_post(
    proxy: TestClient[Any, Any], body: Any, *, params: dict[str, str] | None = None
) -> tuple[int, Any]:
    """POST /calendar/v3/freeBusy with KEY_ALL; status and JSON, checked for leaks."""
    async with proxy.post(
        "/calendar/v3/freeBusy",
        data=json.dumps(body),
        params=params,
        headers={**auth(), "Content-Type": "application/json"},
    ) as resp:
        text = await resp.text()
        assert_no_leak(text)
        return resp.status, json.loads(text)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (
            {"timeMin": DAY["end"], "timeMax": DAY["start"], "items": [{"id": ONE_ADDRESS}]},
            "timeRangeEmpty",
        ),
        (
            {
                "timeMin": "2026-01-01T00:00:00Z",
                "timeMax": "2026-12-01T00:00:00Z",
                "items": [{"id": ONE_ADDRESS}],
            },
            "timeRangeTooLong",
        ),
        (
            {
                "timeMin": DAY["start"],
                "timeMax": DAY["end"],
                "items": [{"id": f"p{n}@{MOCK_DOMAIN}"} for n in range(51)],
            },
            "tooManyCalendarsRequestedForFreeBusy",
        ),
        ({"timeMin": "monday", "timeMax": DAY["end"], "items": [{"id": ONE_ADDRESS}]}, "invalid"),
        ({**DAY, "items": [{"id": ONE_ADDRESS}]}, "badRequest"),
        ({"timeMin": DAY["start"], "timeMax": DAY["end"], "items": []}, "badRequest"),
        ({"timeMin": DAY["start"], "timeMax": DAY["end"], "items": [ONE_ADDRESS]}, "badRequest"),
        (
            {
                "timeMin": DAY["start"],
                "timeMax": DAY["end"],
                "items": [{"id": ONE_ADDRESS}],
                "timeZone": "Mars/Olympus",
            },
            "invalid",
        ),
        (
            {
                "timeMin": DAY["start"],
                "timeMax": DAY["end"],
                "items": [{"id": ONE_ADDRESS}],
                "calendarExpansionMax": 51,
            },
            "badRequest",
        ),
    ],
)
async def test_bad_requests_in_google_shape(
    proxy: TestClient[Any, Any], body: Any, reason: str
) -> None:
    """Invalid requests are 400 with Google's error document and a fitting reason."""
    status, document = await google_post(proxy, body)
    assert status == 400, document
    assert set(document) == {"error"}
    assert set(document["error"]) == GOOGLE_ERROR_KEYS
    assert document["error"]["code"] == 400
    assert document["error"]["errors"][0]["reason"] == reason
    assert document["error"]["errors"][0]["domain"] == "global"


async def test_standard_parameters_accepted_others_rejected(
    proxy: TestClient[Any, Any],
) -> None:
    """alt=json and prettyPrint are fine; a key in the URL is refused."""
    body = {"timeMin": DAY["start"], "timeMax": DAY["end"], "items": [{"id": ONE_ADDRESS}]}
    status, _ = await google_post(proxy, body, params={"alt": "json", "prettyPrint": "false"})
    assert status == 200
    status, document = await google_post(proxy, body, params={"key": "x"})
    assert status == 400
    assert document["error"]["errors"][0]["reason"] == "badRequest"
    status, _ = await google_post(proxy, body, params={"alt": "proto"})
    assert status == 400


async def test_throttled_upstream_is_rate_limit_exceeded(
    make_mock: MockFactory, make_proxy: ProxyFactory
) -> None:
    """Graph answering 429 throughout becomes Google's 429 rateLimitExceeded (usageLimits)."""
    mock = await make_mock()
    proxy = await make_proxy(mock, max_retries=0)
    mock.graph.add_fault(Fault(kind="status", status=429, retry_after="0", count=None))
    body = {"timeMin": DAY["start"], "timeMax": DAY["end"], "items": [{"id": ONE_ADDRESS}]}
    status, document = await google_post(proxy, body)
    assert status == 429
    assert document["error"]["errors"][0] == {
        "domain": "usageLimits",
        "reason": "rateLimitExceeded",
        "message": document["error"]["message"],
    }


async def test_busy_statuses_are_per_consumer(
    make_proxy: ProxyFactory, mock_graph: RunningMock
) -> None:
    """A consumer counting only oof as busy sees only oof periods; the default sees more."""
    from tests.support.proxies import KEY_ALL_SHA

    base = proxy_settings(mock_graph)
    strict = ConsumerSettings(
        name="all",
        key_sha256=KEY_ALL_SHA,
        allow=(f"*@{MOCK_DOMAIN}",),
        policy=Policy(busy_statuses=("oof",)),
    )
    proxy = await make_proxy(mock_graph, settings=replace(base, consumers=(strict,)))
    addresses = mock_graph.graph.organisation.addresses()[:10]
    window = {"start": "2026-03-02T00:00:00Z", "end": "2026-03-30T00:00:00Z"}
    body = {
        "timeMin": window["start"],
        "timeMax": window["end"],
        "items": [{"id": a} for a in addresses],
    }
    status, document = await google_post(proxy, body)
    assert status == 200
    expected = await reference(proxy, addresses, window)
    for address in addresses:
        got = spans(document["calendars"][address]["busy"])
        assert got == merged(expected[address], {"oof"})


async def test_other_routes_do_not_accept_google_shapes(proxy: TestClient[Any, Any]) -> None:
    """Unknown paths and methods under /calendar/v3 are answered in Google's shape."""
    async with proxy.get("/calendar/v3/freeBusy", headers=auth()) as resp:
        assert resp.status == 405
        assert set((await resp.json())["error"]) == GOOGLE_ERROR_KEYS
    async with proxy.get("/calendar/v3/calendars/x/events", headers=auth()) as resp:
        assert resp.status == 404
        assert (await resp.json())["error"]["errors"][0]["reason"] == "notFound"


def _item(start: str, end: str, status: Status) -> BusyItem:
    return BusyItem(
        start=datetime.fromisoformat(start).replace(tzinfo=UTC),
        end=datetime.fromisoformat(end).replace(tzinfo=UTC),
        status=status,
    )


def test_merge_joins_overlapping_and_touching_periods_only() -> None:
    """Overlapping and adjacent busy periods merge; a gap keeps them apart; free is skipped."""
    items = [
        _item("2026-03-16T09:00", "2026-03-16T10:00", Status.BUSY),
        _item("2026-03-16T09:30", "2026-03-16T09:45", Status.TENTATIVE),
        _item("2026-03-16T10:00", "2026-03-16T11:00", Status.OOF),
        _item("2026-03-16T11:00", "2026-03-16T12:00", Status.FREE),
        _item("2026-03-16T11:01", "2026-03-16T11:30", Status.UNKNOWN),
    ]
    statuses = {Status.BUSY, Status.TENTATIVE, Status.OOF, Status.UNKNOWN}
    assert busy_periods(items, statuses) == [
        (items[0].start, items[2].end),
        (items[4].start, items[4].end),
    ]
    assert busy_periods(items, {Status.FREE}) == [(items[3].start, items[3].end)]
    assert busy_periods([], statuses) == []
