"""Every request has a cost, checked before work starts; the worst one allowed never holds
the event loop: /healthz is answered while it runs."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from typing import Any

from aiohttp.test_utils import TestClient

from proxy.mock import MOCK_DOMAIN, RunningMock
from tests.support.mock_graph import MockFactory, schedule_body
from tests.support.proxies import (
    KEY_ALL,
    KEY_ALL_SHA,
    KEY_ONE,
    ONE_ADDRESS,
    ProxyFactory,
    auth,
    consumer,
    graph_calls,
    proxy_settings,
    sample,
)
from tests.support.waiting import until

# The longest window the defaults allow (limits.max_window_days = 180), from noon to noon:
# 181 UTC days, the most any window the defaults allow touches.
NOON_TO_NOON = {"start": "2026-01-05T12:00:00Z", "end": "2026-07-04T12:00:00Z"}
ME = "/v1.0/me/calendar/getSchedule"


def dropin_body(schedules: list[str], interval: int) -> dict[str, Any]:
    """A getSchedule body over the longest window."""
    return schedule_body(schedules, "2026-01-05T00:00:00", "2026-07-04T00:00:00", interval=interval)


async def test_one_address_a_hundred_times_at_five_minutes_is_refused_before_any_fetch(
    proxy: TestClient[Any, Any], mock_graph: RunningMock
) -> None:
    """The reproduction: a key allowed one address asks for it 100 times, 180 days, a
    5-minute view (12.5 MB of availabilityView on main). Now a 400 in Graph's shape, with
    the stable code, and Graph is not asked."""
    body = dropin_body([ONE_ADDRESS] * 100, 5)
    async with proxy.post(ME, json=body, headers=auth(KEY_ONE)) as resp:
        text = await resp.text()
    assert resp.status == 400, text[:300]
    error = json.loads(text)["error"]
    assert error["code"] == "BadRequest"
    assert error["innerError"]["code"] == "request_too_costly"
    assert "18100" in error["message"]
    assert graph_calls(mock_graph) == 0
    # The same view for the address once is well within the ceiling.
    async with proxy.post(ME, json=dropin_body([ONE_ADDRESS], 5), headers=auth(KEY_ONE)) as resp:
        (entry,) = (await resp.json())["value"]
    assert resp.status == 200
    assert len(entry["availabilityView"]) == 180 * 24 * 12


async def test_duplicates_cost_their_view_but_not_their_fetch(
    proxy: TestClient[Any, Any], mock_graph: RunningMock
) -> None:
    """At Graph's default interval a view costs what its fetch does: the address 100 times
    over 180 days is 18,000, allowed; at 29 minutes it is 18,700, over the 18,100 allowed."""
    async with proxy.post(
        ME, json=dropin_body([ONE_ADDRESS] * 100, 30), headers=auth(KEY_ONE)
    ) as r:
        document = await r.json()
    assert r.status == 200
    views = {entry["availabilityView"] for entry in document["value"]}
    assert len(document["value"]) == 100
    assert len(views) == 1
    body = dropin_body([ONE_ADDRESS] * 100, 29)
    async with proxy.post(ME, json=body, headers=auth(KEY_ONE)) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["innerError"]["code"] == "request_too_costly"


async def test_the_rate_is_charged_in_graph_calls(
    make_proxy: ProxyFactory, mock_graph: RunningMock
) -> None:
    """21 addresses over 62 days could need four getSchedule calls: a key allowed 10 a minute
    gets two such requests, not ten."""
    settings = replace(
        proxy_settings(mock_graph),
        consumers=(consumer("all", KEY_ALL_SHA, (f"*@{MOCK_DOMAIN}",), rate_per_minute=10),),
    )
    client = await make_proxy(mock_graph, settings=settings)
    body = {
        "schedules": [f"p{n}@{MOCK_DOMAIN}" for n in range(21)],
        "start": "2026-03-01T00:00:00Z",
        "end": "2026-05-02T00:00:00Z",
    }
    for _ in range(2):
        async with client.post("/v1/availability", json=body, headers=auth(KEY_ALL)) as resp:
            assert resp.status == 200
    async with client.post("/v1/availability", json=body, headers=auth(KEY_ALL)) as resp:
        assert resp.status == 429
        assert (await resp.json())["code"] == "rate_limited"
        # Two tokens are left and four are needed: 2 at 10 a minute is 12 seconds.
        assert resp.headers["Retry-After"] == "12"
    # A one-call request still fits in what is left.
    small = {**body, "schedules": body["schedules"][:1], "end": "2026-03-02T00:00:00Z"}
    async with client.post("/v1/availability", json=small, headers=auth(KEY_ALL)) as resp:
        assert resp.status == 200


async def test_healthz_is_answered_while_the_worst_allowed_request_runs(
    make_mock: MockFactory, make_proxy: ProxyFactory
) -> None:
    """100 mailboxes over 180 days from noon (181 UTC days: cost 18,100, the defaults'
    ceiling), from the cache, on the JSON API and the Graph drop-in: a /healthz sent while the
    answer is being computed is answered before the computing ends.

    Deterministic, not timed: the test runs in the proxy's own event loop, and the big
    request's handler gives the loop a turn between slices of work, a few hundred of them for
    this answer, while a /healthz round trip takes about ten turns. "Computing ends" is when
    the envelope counts the request in /metrics (before its bytes are sent), and the healthz
    is sent once the cache has counted the request's 18,100 hits (before the answer is
    assembled, shaped and rendered). On main the handler ran from that count to its end
    without a turn, so the count was already there when /healthz was even sent.
    """
    mock = await make_mock(org_size=100)
    people = mock.graph.organisation.addresses()[:100]
    proxy = await make_proxy(mock)
    body = {"schedules": people, **NOON_TO_NOON}
    async with proxy.post("/v1/availability", json=body, headers=auth(KEY_ALL)) as resp:
        assert resp.status == 200
        await resp.read()
    # Reversed: not the request the response memo could know (it keeps no answer this big
    # anyway), so the answer is assembled again from the cache.
    native = ("/v1/availability", "/v1/availability", {**body, "schedules": people[::-1]})
    noon = schedule_body(people, "2026-01-05T12:00:00", "2026-07-04T12:00:00", interval=30)
    dropin = (
        f"/v1.0/users/{people[0]}/calendar/getSchedule",
        "/v1.0/users/{id}/calendar/getSchedule",
        noon,
    )
    for path, route, worst in (native, dropin):
        await _healthz_while(proxy, path, route, worst)


async def _healthz_while(
    proxy: TestClient[Any, Any], path: str, route: str, worst: dict[str, Any]
) -> None:
    """Send ``worst`` to ``path``; once its cache lookups are counted, /healthz answers
    before the worst one is counted as answered (under its ``route`` template)."""
    hits = sample(proxy, "freebusy_cache_lookups_total", result="hit")

    def answered() -> float:
        labels = {"route": route, "method": "POST", "status": "200"}
        return sample(proxy, "freebusy_http_requests_total", **labels)

    done = answered()

    async def ask() -> int:
        async with proxy.post(path, json=worst, headers=auth(KEY_ALL)) as resp:
            await resp.read()
            return resp.status

    task = asyncio.create_task(ask())
    await until(
        lambda: sample(proxy, "freebusy_cache_lookups_total", result="hit") >= hits + 18_100
    )
    async with proxy.get("/healthz") as resp:
        assert resp.status == 200
    assert answered() == done, "the worst request finished computing before /healthz was answered"
    assert await task == 200
    assert answered() == done + 1
