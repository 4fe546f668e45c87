"""The Graph drop-in: msgraph-sdk's GraphServiceClient, unmodified, pointed at the proxy."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from aiohttp.test_utils import TestClient
from kiota_abstractions.authentication import (
    AccessTokenProvider,
    AllowedHostsValidator,
    BaseBearerTokenAuthenticationProvider,
)
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph.generated.models.date_time_time_zone import DateTimeTimeZone
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.users.item.calendar.get_schedule.get_schedule_post_request_body import (
    GetSchedulePostRequestBody,
)
from msgraph.graph_request_adapter import options as graph_sdk_options
from msgraph_core import GraphClientFactory

from proxy.core.minimize import parse_graph_datetime
from proxy.core.model import BusyItem, Status, Window
from proxy.mock import MOCK_DOMAIN, Fault, RunningMock
from proxy.web.dialects.graph_dropin import availability_view
from tests.support.dialects import DAY, DST_WEEK, reference
from tests.support.leaks import assert_no_leak
from tests.support.mock_graph import MockFactory
from tests.support.proxies import KEY_ALL, KEY_ONE, ONE_ADDRESS, ProxyFactory, auth

GRAPH_ERROR_KEYS = {"code", "message", "innerError"}
# The SDK's generated code warns about its own deprecated classes as msgraph imports them.
pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning:msgraph"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:kiota_abstractions"),
]


class ApiKey(AccessTokenProvider):
    """Hands the SDK our API key as if it were a Graph access token."""

    def __init__(self, key: str, host: str) -> None:
        self._key = key
        self._hosts = AllowedHostsValidator([host])

    async def get_authorization_token(
        self, uri: str, additional_authentication_context: dict[str, Any] | None = None
    ) -> str:
        """The key, for the proxy's host only (the SDK's own host check)."""
        return self._key if self._hosts.is_url_host_valid(uri) else ""

    def get_allowed_hosts_validator(self) -> AllowedHostsValidator:
        """The proxy's host."""
        return self._hosts


@pytest.fixture
async def graph_client(proxy: TestClient[Any, Any]) -> AsyncIterator[Any]:
    """A factory of GraphServiceClients whose base URL is the proxy's /v1.0."""
    transports: list[httpx.AsyncHTTPTransport] = []

    def make(key: str = KEY_ALL) -> GraphServiceClient:
        host = str(proxy.server.host)
        # msgraph-core's transport wrapper has no aclose(), so closing the client would leave
        # the pooled connections open: keep the inner transport to close it ourselves.
        transport = httpx.AsyncHTTPTransport()
        transports.append(transport)
        http = GraphClientFactory.create_with_default_middleware(
            client=httpx.AsyncClient(transport=transport), options=graph_sdk_options
        )
        adapter = GraphRequestAdapter(
            BaseBearerTokenAuthenticationProvider(ApiKey(key, host)), client=http
        )
        adapter.base_url = f"http://{host}:{proxy.server.port}/v1.0"
        return GraphServiceClient(request_adapter=adapter)

    yield make
    for transport in transports:
        await transport.aclose()


def sdk_body(schedules: list[str], *, interval: int | None = 60) -> GetSchedulePostRequestBody:
    """A getSchedule body as SDK users build it."""
    return GetSchedulePostRequestBody(
        schedules=schedules,
        start_time=DateTimeTimeZone(date_time="2026-03-16T00:00:00", time_zone="UTC"),
        end_time=DateTimeTimeZone(date_time="2026-03-17T00:00:00", time_zone="UTC"),
        availability_view_interval=interval,
    )


def sdk_instant(value: Any) -> datetime:
    """A parsed dateTimeTimeZone from the SDK as a UTC instant."""
    instant = parse_graph_datetime({"dateTime": value.date_time, "timeZone": value.time_zone})
    assert instant is not None
    return instant


async def test_sdk_parses_minimized_schedules(
    graph_client: Any, proxy: TestClient[Any, Any], mock_graph: RunningMock
) -> None:
    """GraphServiceClient gets status/start/end only, the same items as the JSON API."""
    addresses = mock_graph.graph.organisation.addresses()[:4]
    client = graph_client()
    response = await client.users.by_user_id(addresses[0]).calendar.get_schedule.post(
        sdk_body([*addresses, f"nobody@{MOCK_DOMAIN}"])
    )
    expected = await reference(proxy, addresses, DAY)
    assert [info.schedule_id for info in response.value] == [*addresses, f"nobody@{MOCK_DOMAIN}"]
    total = 0
    for info in response.value[:-1]:
        assert info.error is None
        assert info.working_hours is None
        assert info.additional_data == {}
        assert len(info.availability_view) == 24
        got = []
        for item in info.schedule_items:
            total += 1
            assert item.subject is None
            assert item.location is None
            assert item.is_private is None
            assert item.additional_data == {}
            assert item.start.time_zone == "UTC"
            got.append((item.status.value, sdk_instant(item.start), sdk_instant(item.end)))
        assert got == expected[info.schedule_id]
    assert total > 0
    missing = response.value[-1]
    assert missing.error.response_code == "5009"
    assert missing.schedule_items is None
    assert missing.availability_view is None
    assert "nobody" not in missing.error.message  # generic text, not Graph's echo


async def test_sdk_me_for_a_key_bound_to_one_person(graph_client: Any) -> None:
    """/me works for a consumer allowed exactly one address (the SDK rewrites /users/me-…)."""
    response = await graph_client(KEY_ONE).me.calendar.get_schedule.post(sdk_body([ONE_ADDRESS]))
    assert [info.schedule_id for info in response.value] == [ONE_ADDRESS]
    assert response.value[0].error is None


async def test_me_for_a_key_allowed_many_is_rejected(graph_client: Any) -> None:
    """/me is 400 in Graph's shape for a key that may query a whole domain."""
    with pytest.raises(ODataError) as caught:
        await graph_client(KEY_ALL).me.calendar.get_schedule.post(sdk_body([ONE_ADDRESS]))
    assert caught.value.response_status_code == 400
    assert caught.value.error.code == "BadRequest"


@pytest.mark.parametrize(
    ("key", "schedule", "status", "code"),
    [
        ("fbp_not-a-valid-key", ONE_ADDRESS, 401, "InvalidAuthenticationToken"),
        (KEY_ONE, f"megan.bowen@{MOCK_DOMAIN}", 403, "ErrorAccessDenied"),
    ],
)
async def test_sdk_parses_whole_request_errors(
    graph_client: Any, key: str, schedule: str, status: int, code: str
) -> None:
    """401 and 403 come back in Graph's error shape; the SDK raises ODataError with the code."""
    with pytest.raises(ODataError) as caught:
        await (
            graph_client(key)
            .users.by_user_id(schedule)
            .calendar.get_schedule.post(sdk_body([schedule]))
        )
    assert caught.value.response_status_code == status
    assert caught.value.error.code == code
    assert caught.value.error.inner_error is not None


async def graph_post(
    proxy: TestClient[Any, Any],
    body: Any,
    *,
    headers: dict[str, str] | None = None,
    path: str = f"/v1.0/users/{ONE_ADDRESS}/calendar/getSchedule",
) -> tuple[int, dict[str, str], Any]:
    """POST to the drop-in; status, headers and parsed JSON, checked for leaks."""
    sent = {**auth(), "Content-Type": "application/json", **(headers or {})}
    async with proxy.post(path, data=json.dumps(body), headers=sent) as resp:
        text = await resp.text()
        assert_no_leak(text, json.dumps(dict(resp.headers)))
        assert resp.content_type == "application/json"
        return resp.status, dict(resp.headers), json.loads(text)


def camel(schedules: list[str], **extra: Any) -> dict[str, Any]:
    """Graph's documented camelCase body for DAY."""
    return {
        "schedules": schedules,
        "startTime": {"dateTime": "2026-03-16T00:00:00", "timeZone": "UTC"},
        "endTime": {"dateTime": "2026-03-17T00:00:00", "timeZone": "UTC"},
        **extra,
    }


async def test_any_parameter_casing_and_string_interval(proxy: TestClient[Any, Any]) -> None:
    """camelCase, PascalCase and lower-case bodies, and an interval sent as a string, agree."""
    pascal = {
        "Schedules": [ONE_ADDRESS],
        "StartTime": {"DateTime": "2026-03-16T00:00:00", "TimeZone": "UTC"},
        "EndTime": {"DateTime": "2026-03-17T00:00:00", "TimeZone": "UTC"},
        "AvailabilityViewInterval": 60,
    }
    lower = json.loads(json.dumps(pascal).lower().replace(ONE_ADDRESS.lower(), ONE_ADDRESS))
    answers = []
    for body in (camel([ONE_ADDRESS], availabilityViewInterval="60"), pascal, lower):
        status, _, document = await graph_post(proxy, body)
        assert status == 200, document
        answers.append(document)
    assert answers[0] == answers[1] == answers[2]
    assert len(answers[0]["value"][0]["availabilityView"]) == 24


async def test_default_interval_is_30_minutes(proxy: TestClient[Any, Any]) -> None:
    """Without availabilityViewInterval the view has one digit per 30 minutes."""
    status, _, document = await graph_post(proxy, camel([ONE_ADDRESS]))
    assert status == 200
    assert len(document["value"][0]["availabilityView"]) == 48


async def test_prefer_time_zone_is_honoured(proxy: TestClient[Any, Any]) -> None:
    """Prefer: outlook.timezone gives local times in that zone, the same instants as UTC."""
    _, _, utc = await graph_post(proxy, camel([ONE_ADDRESS]))
    status, headers, local = await graph_post(
        proxy,
        camel([ONE_ADDRESS]),
        headers={"Prefer": 'outlook.timezone="Pacific Standard Time"'},
    )
    assert status == 200
    assert headers["Preference-Applied"] == 'outlook.timezone="Pacific Standard Time"'
    utc_items = utc["value"][0]["scheduleItems"]
    local_items = local["value"][0]["scheduleItems"]
    assert utc_items
    assert len(utc_items) == len(local_items)
    for a, b in zip(utc_items, local_items, strict=True):
        assert b["start"]["timeZone"] == "Pacific Standard Time"
        assert parse_graph_datetime(a["start"]) == parse_graph_datetime(b["start"])
        assert parse_graph_datetime(a["end"]) == parse_graph_datetime(b["end"])
        assert a["start"]["dateTime"] != b["start"]["dateTime"]


async def test_unknown_prefer_zone_falls_back_to_utc(proxy: TestClient[Any, Any]) -> None:
    """A zone we do not know is a preference not applied (RFC 7240), not an error."""
    status, headers, document = await graph_post(
        proxy, camel([ONE_ADDRESS]), headers={"Prefer": 'outlook.timezone="Mars/Olympus"'}
    )
    assert status == 200
    assert "Preference-Applied" not in headers
    assert {i["start"]["timeZone"] for i in document["value"][0]["scheduleItems"]} == {"UTC"}


async def test_window_in_a_windows_zone(proxy: TestClient[Any, Any]) -> None:
    """startTime/endTime in a Windows zone across a DST switch give that local window."""
    body = camel([ONE_ADDRESS])
    body["startTime"] = {"dateTime": "2026-03-07T00:00:00", "timeZone": "Eastern Standard Time"}
    body["endTime"] = {"dateTime": "2026-03-09T00:00:00", "timeZone": "Eastern Standard Time"}
    body["availabilityViewInterval"] = 60
    status, _, document = await graph_post(proxy, body)
    assert status == 200, document
    # 2026-03-08 has 23 hours in New York: 24 + 23 one-hour slots.
    assert len(document["value"][0]["availabilityView"]) == 47


@pytest.mark.parametrize(
    "body",
    [
        camel([ONE_ADDRESS], availabilityViewInterval=4),
        camel([ONE_ADDRESS], availabilityViewInterval=1441),
        camel([ONE_ADDRESS], availabilityViewInterval=None),
        camel([ONE_ADDRESS], availabilityViewInterval=True),
        camel([ONE_ADDRESS], subject="x"),
        camel([]),
        camel(["not an address"]),
        {**camel([ONE_ADDRESS]), "startTime": {"dateTime": "2026-03-16T00:00:00"}},
        {**camel([ONE_ADDRESS]), "endTime": {"dateTime": "yesterday", "timeZone": "UTC"}},
        {**camel([ONE_ADDRESS]), "endTime": {"dateTime": "2026-03-15T00:00:00", "timeZone": "UTC"}},
        {**camel([ONE_ADDRESS]), "startTime": {"dateTime": "2026-03-16T00:00:00", "timeZone": "X"}},
        [ONE_ADDRESS],
    ],
)
async def test_bad_requests_get_graph_errors(proxy: TestClient[Any, Any], body: Any) -> None:
    """Invalid bodies are 400 with Graph's whole-request error shape and a message of ours."""
    status, _, document = await graph_post(proxy, body)
    assert status == 400, document
    assert set(document) == {"error"}
    assert set(document["error"]) == GRAPH_ERROR_KEYS
    assert document["error"]["code"] == "BadRequest"
    assert {"code", "date", "request-id"} <= set(document["error"]["innerError"])


async def test_interval_bounds_are_inclusive(proxy: TestClient[Any, Any]) -> None:
    """5 and 1440 minutes are accepted."""
    for interval, digits in ((5, 288), (1440, 1)):
        status, _, document = await graph_post(
            proxy, camel([ONE_ADDRESS], availabilityViewInterval=interval)
        )
        assert status == 200
        assert len(document["value"][0]["availabilityView"]) == digits


async def test_non_json_is_415_in_graph_shape(proxy: TestClient[Any, Any]) -> None:
    """A body that is not application/json is 415, in Graph's shape."""
    async with proxy.post(
        f"/v1.0/users/{ONE_ADDRESS}/calendar/getSchedule",
        data="schedules=x",
        headers={**auth(), "Content-Type": "text/plain"},
    ) as resp:
        assert resp.status == 415
        assert set((await resp.json())["error"]) == GRAPH_ERROR_KEYS


async def test_client_request_id_is_echoed_only_when_a_uuid(proxy: TestClient[Any, Any]) -> None:
    """innerError carries the caller's client-request-id when it is a UUID, never other text."""
    good = "8b1c5f0e-1d2a-4c3b-9e8f-0a1b2c3d4e5f"
    _, _, document = await graph_post(proxy, [], headers={"client-request-id": good})
    assert document["error"]["innerError"]["client-request-id"] == good
    _, _, document = await graph_post(proxy, [], headers={"client-request-id": "<script>"})
    assert "client-request-id" not in document["error"]["innerError"]


async def test_unknown_path_and_method_in_graph_shape(proxy: TestClient[Any, Any]) -> None:
    """Under /v1.0, 404 and 405 are Graph-shaped too; 405 names the allowed method."""
    async with proxy.get("/v1.0/users/x/calendar/getSchedule", headers=auth()) as resp:
        assert resp.status == 405
        assert resp.headers["Allow"] == "POST"
        assert set((await resp.json())["error"]) == GRAPH_ERROR_KEYS
    async with proxy.post("/v1.0/users/x/events", headers=auth()) as resp:
        assert resp.status == 404
        assert (await resp.json())["error"]["code"] == "ResourceNotFound"


async def test_throttled_upstream_is_429(make_mock: MockFactory, make_proxy: ProxyFactory) -> None:
    """When Graph keeps answering 429, the drop-in answers 429 TooManyRequests, as Graph would."""
    mock = await make_mock()
    proxy = await make_proxy(mock, max_retries=0)
    mock.graph.add_fault(Fault(kind="status", status=429, retry_after="0", count=None))
    status, _, document = await graph_post(proxy, camel([ONE_ADDRESS]))
    assert status == 429
    assert document["error"]["code"] == "TooManyRequests"
    assert document["error"]["innerError"]["code"] == "throttled"


@pytest.mark.parametrize(("upstream", "status"), [(503, 503), (500, 502)])
async def test_upstream_failures_in_graph_shape(
    make_mock: MockFactory, make_proxy: ProxyFactory, upstream: int, status: int
) -> None:
    """A whole-request upstream failure is Graph-shaped, with none of Graph's text."""
    mock = await make_mock()
    proxy = await make_proxy(mock, max_retries=0)
    mock.graph.add_fault(Fault(kind="status", status=upstream, retry_after="0", count=None))
    got, _, document = await graph_post(proxy, camel([ONE_ADDRESS]))
    assert got == status
    assert set(document["error"]) == GRAPH_ERROR_KEYS


async def test_canaries_never_reach_the_drop_in(
    proxy: TestClient[Any, Any], mock_graph: RunningMock
) -> None:
    """A week of 20 mailboxes: items carry only status/start/end; no canary anywhere."""
    addresses = mock_graph.graph.organisation.addresses()[:20]
    body = camel(addresses, availabilityViewInterval=15)
    body["startTime"]["dateTime"] = "2026-03-06T00:00:00"
    body["endTime"]["dateTime"] = "2026-03-13T00:00:00"
    status, _, document = await graph_post(proxy, body)
    assert status == 200
    seen = 0
    for info in document["value"]:
        assert set(info) == {"scheduleId", "availabilityView", "scheduleItems"}
        for item in info["scheduleItems"]:
            seen += 1
            assert set(item) == {"status", "start", "end"}
            assert set(item["start"]) == {"dateTime", "timeZone"}
    assert seen > 50
    expected = await reference(proxy, addresses, DST_WEEK)
    assert sum(len(v) for v in expected.values()) == seen


def _item(start: str, end: str, status: Status) -> BusyItem:
    return BusyItem(
        start=datetime.fromisoformat(start).replace(tzinfo=UTC),
        end=datetime.fromisoformat(end).replace(tzinfo=UTC),
        status=status,
    )


def test_availability_view_takes_the_strongest_status_per_slot() -> None:
    """Each digit is the strongest overlapping status: oof > busy/unknown > tentative > free."""
    window = Window(
        start=datetime(2026, 3, 16, 9, tzinfo=UTC), end=datetime(2026, 3, 16, 13, tzinfo=UTC)
    )
    items = [
        _item("2026-03-16T09:00", "2026-03-16T09:30", Status.TENTATIVE),
        _item("2026-03-16T09:15", "2026-03-16T09:45", Status.BUSY),
        _item("2026-03-16T10:00", "2026-03-16T10:30", Status.WORKING_ELSEWHERE),
        _item("2026-03-16T11:00", "2026-03-16T11:01", Status.OOF),
        _item("2026-03-16T12:00", "2026-03-16T12:30", Status.UNKNOWN),
    ]
    assert availability_view(items, window, 30) == "22003020"
    assert availability_view(items, window, 60) == "2032"
    assert availability_view([], window, 1440) == "0"


def test_availability_view_counts_a_partial_last_slot() -> None:
    """A window that is not a multiple of the interval gets a digit for the remainder."""
    start = datetime(2026, 3, 16, 9, tzinfo=UTC)
    window = Window(start=start, end=start + timedelta(minutes=70))
    late = BusyItem(start=start + timedelta(minutes=65), end=window.end, status=Status.BUSY)
    assert availability_view([late], window, 30) == "002"


def test_availability_view_of_an_all_day_event_in_local_time() -> None:
    """An all-day event (UTC midnight to midnight) fills exactly its hours of a local window."""
    local = ZoneInfo("America/New_York")
    window = Window(
        start=datetime(2026, 3, 16, tzinfo=local).astimezone(UTC),
        end=datetime(2026, 3, 17, tzinfo=local).astimezone(UTC),
    )
    all_day = _item("2026-03-16T00:00", "2026-03-17T00:00", Status.OOF)
    # New York is UTC-4 on 16 March: the UTC day covers 00:00-20:00 local.
    assert availability_view([all_day], window, 60) == "3" * 20 + "0" * 4
