"""The getSchedule client's edge cases, through the proxy against the mock."""

from __future__ import annotations

import json
from typing import Any

from aiohttp.test_utils import TestClient

from proxy.mock import MOCK_DOMAIN, Fault, RunningMock
from tests.support.leaks import assert_no_leak
from tests.support.proxies import auth

DAY = {"start": "2026-03-16T00:00:00Z", "end": "2026-03-17T00:00:00Z"}


async def test_unknown_first_address_does_not_sink_the_chunk(
    proxy: TestClient[Any, Any], mock_graph: RunningMock
) -> None:
    """Graph 404s an unknown mailbox in the URL; it becomes not_found and the rest still answer."""
    known = mock_graph.graph.organisation.addresses()[:2]
    schedules = [f"ghost@{MOCK_DOMAIN}", *known]
    async with proxy.post(
        "/v1/availability", json={"schedules": schedules, **DAY}, headers=auth()
    ) as resp:
        text = await resp.text()
    assert resp.status == 200, text
    assert_no_leak(text)
    errors = [entry["error"] for entry in json.loads(text)["schedules"]]
    assert errors == [{"code": "not_found"}, None, None]
    assert [r["status"] for r in mock_graph.graph.stats()["recent"]] == [404, 200]


async def test_duplicate_addresses_fetched_once_answered_each(
    proxy: TestClient[Any, Any], mock_graph: RunningMock
) -> None:
    """The same address twice (any case) is one schedule upstream and two entries downstream."""
    address = mock_graph.graph.organisation.addresses()[0]
    schedules = [address, address.upper()]
    async with proxy.post(
        "/v1/availability", json={"schedules": schedules, **DAY}, headers=auth()
    ) as resp:
        body = await resp.json()
    assert resp.status == 200
    assert [entry["schedule"] for entry in body["schedules"]] == schedules
    assert body["schedules"][0]["items"] == body["schedules"][1]["items"]
    assert [len(r["schedules"]) for r in mock_graph.graph.stats()["recent"]] == [1]


async def test_requests_ask_graph_for_utc(
    proxy: TestClient[Any, Any], mock_graph: RunningMock
) -> None:
    """Offsets in the request are converted; Graph is asked for UTC from a UTC midnight."""
    address = mock_graph.graph.organisation.addresses()[0]
    params = {
        "schedules": address,
        "start": "2026-03-16T09:00:00+01:00",
        "end": "2026-03-16T17:00:00+01:00",
    }
    async with proxy.get("/v1/availability", params=params, headers=auth()) as resp:
        body = await resp.json()
    assert resp.status == 200
    assert (body["start"], body["end"]) == ("2026-03-16T08:00:00Z", "2026-03-16T16:00:00Z")
    (recent,) = mock_graph.graph.stats()["recent"]
    assert recent["prefer_tz"] == "UTC"
    # The cache fetches whole UTC days (its block of 8 on the calendar's grid, 13 to 20
    # March), so the call covers the requested window from a midnight.
    assert (recent["start"], recent["end"]) == ("2026-03-13T00:00:00Z", "2026-03-21T00:00:00Z")


async def test_identity_platform_5xx_is_502_not_500(
    proxy: TestClient[Any, Any], mock_graph: RunningMock
) -> None:
    """A token endpoint answering 503 (msal raises) is a 502 upstream_auth, with no detail."""
    mock_graph.graph.add_fault(Fault(endpoint="token", kind="status", status=503, count=None))
    body = {"schedules": mock_graph.graph.organisation.addresses()[:1], **DAY}
    async with proxy.post("/v1/availability", json=body, headers=auth()) as resp:
        text = await resp.text()
    assert resp.status == 502, text
    assert resp.content_type == "application/problem+json"
    assert json.loads(text)["code"] == "upstream_auth"
    assert_no_leak(text)
    async with proxy.get("/readyz") as resp:
        ready = await resp.json()
    assert resp.status == 503
    assert ready["checks"]["token"] == "failed"
