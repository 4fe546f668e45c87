"""The shared pieces one at a time, with proxies in this process sharing a real Redis: the
Retry-After hold, the breaker, forget(), the tier's ages, and Redis unreachable at start."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from aiohttp.test_utils import TestClient

from proxy.config.schema import ThrottleSettings
from proxy.mock import Fault, RunningMock
from proxy.sources.breaker import BreakerState
from proxy.web.keys import AVAILABILITY, CHAIN
from tests.support.connect import ADMIN_KEY_SHA, admin
from tests.support.proxies import ProxyFactory, ask, cache_of, graph_calls, sample
from tests.support.redis_server import RedisServer, free_port
from tests.support.replicas import cluster_settings
from tests.support.waiting import eventually, until

DAY = {"start": "2026-03-16T00:00:00Z", "end": "2026-03-17T00:00:00Z"}
LATER = {"start": "2026-05-11T00:00:00Z", "end": "2026-05-12T00:00:00Z"}


async def keys(server: RedisServer, pattern: str) -> list[bytes]:
    """Keys in Redis matching ``pattern``."""
    client = server.client()
    try:
        return [key async for key in client.scan_iter(match=pattern)]
    finally:
        await client.aclose()


async def until_keys(server: RedisServer, pattern: str, *, present: bool) -> None:
    """Until a key matching ``pattern`` is in Redis (or none is)."""

    async def holds() -> bool:
        return bool(await keys(server, pattern)) == present

    await eventually(holds)


async def two(
    make_proxy: ProxyFactory, mock: RunningMock, server: RedisServer, **fields: Any
) -> tuple[TestClient[Any, Any], TestClient[Any, Any]]:
    """Two proxies sharing ``server``."""
    settings = cluster_settings(mock, server.url, **fields)
    return await make_proxy(mock, settings=settings), await make_proxy(mock, settings=settings)


async def test_a_retry_after_holds_the_mailbox_for_every_replica(
    redis_server: RedisServer, make_proxy: ProxyFactory, mock_graph: RunningMock
) -> None:
    """Graph's Retry-After to one replica keeps the other's calls for that mailbox back."""
    a, b = await two(make_proxy, mock_graph, redis_server)
    person = mock_graph.graph.organisation.addresses()[3]
    mock_graph.graph.reset()
    mock_graph.graph.add_fault(
        Fault(kind="status", status=429, retry_after="2", mailbox=person, count=1)
    )
    first = asyncio.ensure_future(ask(a, [person], DAY))
    await until_keys(redis_server, "fbp:hold:*", present=True)
    second = asyncio.ensure_future(ask(b, [person], LATER))
    await until(lambda: sample(b, "freebusy_throttle_events_total", event="mailbox_hold") >= 1)
    assert graph_calls(mock_graph) == 1, "the other replica called during the hold"
    answers = await asyncio.gather(first, second)
    assert [status for status, _ in answers] == [200, 200]
    assert graph_calls(mock_graph) == 3


async def test_the_breaker_opens_and_closes_on_every_replica(
    redis_server: RedisServer, make_proxy: ProxyFactory, mock_graph: RunningMock
) -> None:
    """One replica's breaker opening opens the other's (which then does not ask Graph);
    its closing closes the other's."""
    throttle = ThrottleSettings(breaker_failures=1, breaker_cool_down_seconds=60)
    a, b = await two(
        make_proxy, mock_graph, redis_server, throttle=throttle, graph={"max_retries": 0}
    )
    people = mock_graph.graph.organisation.addresses()
    mock_graph.graph.add_fault(Fault(kind="status", status=503, count=None))
    status, _ = await ask(a, [people[4]], DAY)
    assert status >= 500
    other = b.app[CHAIN].breaker
    await until(lambda: other.state is BreakerState.OPEN)
    calls = graph_calls(mock_graph)
    status, body = await ask(b, [people[5]], DAY)
    assert (status, body["code"]) == (502, "upstream_unavailable")
    assert graph_calls(mock_graph) == calls
    mock_graph.graph.clear_faults()
    # As after a probe that found Graph answering.
    a.app[CHAIN].breaker.record_success()
    await until(lambda: other.state is BreakerState.CLOSED)
    assert (await ask(b, [people[5]], DAY))[0] == 200


async def test_forget_reaches_redis_and_every_replica(
    redis_server: RedisServer, make_proxy: ProxyFactory, mock_graph: RunningMock
) -> None:
    """forget() on one replica drops the mailbox's days from Redis and from the other's
    cache: the next question is asked of Graph again."""
    a, b = await two(make_proxy, mock_graph, redis_server)
    person = mock_graph.graph.organisation.addresses()[6]
    mock_graph.graph.reset()
    assert (await ask(a, [person], DAY))[0] == 200
    assert (await ask(b, [person], DAY))[0] == 200
    assert graph_calls(mock_graph) == 1
    assert any(key[0] == person for key, _ in cache_of(b).entries())
    a.app[AVAILABILITY].forget([person.upper()])
    await until(lambda: not any(key[0] == person for key, _ in cache_of(b).entries()))
    await until_keys(redis_server, "fbp:d1:*", present=False)
    assert (await ask(b, [person], DAY))[0] == 200
    assert graph_calls(mock_graph) == 2


async def test_a_day_from_redis_expires_as_it_was_fetched(
    redis_server: RedisServer, make_proxy: ProxyFactory, mock_graph: RunningMock
) -> None:
    """A day another replica fetched 50 s before is fresh here for the TTL's last 10 s only."""
    a, b = await two(make_proxy, mock_graph, redis_server)
    person = mock_graph.graph.organisation.addresses()[7]
    assert (await ask(a, [person], DAY))[0] == 200
    client = redis_server.client()
    try:
        for key in await keys(redis_server, "fbp:d1:*"):
            await client.pexpire(key, 10_000)
    finally:
        await client.aclose()
    assert (await ask(b, [person], DAY))[0] == 200
    cache = cache_of(b)
    ttl = cache.ttl_s
    ages = [cache._clock() - entry.fetched_at for key, entry in cache.entries() if key[0] == person]
    assert ages
    assert all(ttl - 10.5 <= age <= ttl - 9 for age in ages), (ttl, ages)


async def test_redis_unreachable_at_start_degrades_without_unreadiness(
    make_proxy: ProxyFactory, mock_graph: RunningMock
) -> None:
    """A replica whose Redis does not answer serves (local limits) and stays ready; /readyz
    and the console say the cluster is degraded."""
    settings = cluster_settings(mock_graph, f"redis://127.0.0.1:{free_port()}/0")
    settings = replace(settings, connect=replace(settings.connect, admin_key_sha256=ADMIN_KEY_SHA))
    client = await make_proxy(mock_graph, settings=settings)
    person = mock_graph.graph.organisation.addresses()[8]
    assert (await ask(client, [person], DAY))[0] == 200
    async with client.get("/readyz") as resp:
        assert resp.status == 200
        body = await resp.json()
    assert body["status"] == "ready"
    assert body["checks"]["cluster"] == "degraded"
    assert sample(client, "freebusy_cluster_degraded") == 1
    async with client.get("/admin/readiness", headers=admin()) as resp:
        checks = {check["name"]: check for check in (await resp.json())["checks"]}
    assert checks["cluster"] == {
        "name": "cluster", "ok": False, "state": "degraded", "gates_readiness": False,
        "mode": "fallback",
    }  # fmt: skip
