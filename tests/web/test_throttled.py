"""Whole-request "throttled" answers say when to come back (Retry-After), on every route."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from proxy.config.schema import CacheSettings, ThrottleSettings
from proxy.mock import Fault, RunningMock
from tests.support.feeds import ICS, with_feed
from tests.support.mock_graph import schedule_body
from tests.support.proxies import DAY, KEY_ALL, ONE_ADDRESS, ProxyFactory, auth, proxy_settings

GOOGLE = {"timeMin": DAY["start"], "timeMax": DAY["end"], "items": [{"id": ONE_ADDRESS}]}
# Route, body, the status it answers throttled with, and how its shape says "throttled".
ROUTES = (
    ("/v1/availability", {"schedules": [ONE_ADDRESS], **DAY}, 502, '"throttled"'),
    (
        f"/v1.0/users/{ONE_ADDRESS}/calendar/getSchedule",
        schedule_body([ONE_ADDRESS]),
        429,
        '"throttled"',
    ),
    ("/calendar/v3/freeBusy", GOOGLE, 429, '"rateLimitExceeded"'),
)


async def test_graphs_retry_after_is_passed_on(
    make_proxy: ProxyFactory, mock_graph: RunningMock
) -> None:
    """Graph keeps answering 429 with Retry-After 7 (longer than the request may wait): every
    dialect answers throttled, in its own shape, with Retry-After 7."""
    client = await make_proxy(mock_graph, timeout_seconds=2.0)
    mock_graph.graph.add_fault(Fault(kind="status", status=429, retry_after="7", count=None))
    for path, body, status, says in ROUTES:
        async with client.post(path, json=body, headers=auth(KEY_ALL)) as resp:
            text = await resp.text()
        assert resp.status == status, text
        assert says in text
        assert resp.headers["Retry-After"] == "7"


async def test_our_own_budget_says_when_too(
    make_proxy: ProxyFactory, mock_graph: RunningMock
) -> None:
    """The per-mailbox budget spent (Graph is not even asked): throttled with the budget's
    minute as Retry-After, the feed included."""
    settings = replace(
        with_feed(mock_graph),
        throttle=ThrottleSettings(mailbox_budget=1),
        cache=CacheSettings(ttl_seconds=0),
    )
    client = await make_proxy(mock_graph, settings=settings)
    async with client.post(
        "/v1/availability", json={"schedules": [ONE_ADDRESS], **DAY}, headers=auth(KEY_ALL)
    ) as resp:
        assert resp.status == 200
    for path, body, _, says in ROUTES:
        async with client.post(path, json=body, headers=auth(KEY_ALL)) as resp:
            assert says in await resp.text()
            assert resp.headers["Retry-After"] == "60"
    async with client.get(ICS, params=DAY, headers=auth(KEY_ALL)) as resp:
        assert (await resp.json())["code"] == "throttled"
        assert resp.headers["Retry-After"] == "60"


async def test_an_open_breaker_says_when_it_will_ask_again(
    make_proxy: ProxyFactory, mock_graph: RunningMock
) -> None:
    """While the breaker is open, upstream_unavailable carries the rest of its cool-down."""
    settings = replace(
        proxy_settings(mock_graph, max_retries=0),
        throttle=ThrottleSettings(breaker_failures=1, breaker_cool_down_seconds=30),
    )
    client = await make_proxy(mock_graph, settings=settings)
    mock_graph.graph.add_fault(Fault(kind="status", status=500, count=None))
    body: dict[str, Any] = {"schedules": [ONE_ADDRESS], **DAY}
    async with client.post("/v1/availability", json=body, headers=auth(KEY_ALL)) as resp:
        assert resp.status == 502
    async with client.post("/v1/availability", json=body, headers=auth(KEY_ALL)) as resp:
        assert (await resp.json())["code"] == "upstream_unavailable"
        assert 1 <= int(resp.headers["Retry-After"]) <= 30
