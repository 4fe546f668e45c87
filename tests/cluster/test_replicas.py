"""Three proxy processes sharing one Redis: one cache, one fetch per miss, one rate, and
nothing in Redis that names anyone."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from proxy.mock import Fault, RunningMock
from tests.support.leaks import FORBIDDEN_MARKERS
from tests.support.proxies import graph_calls
from tests.support.redis_server import RedisServer
from tests.support.replicas import (
    KEY_LIMITED,
    LIMITED_RATE,
    ask_replica,
    cluster_config,
    metric,
    running_replicas,
)

DAY = ("2026-03-16T00:00:00Z", "2026-03-17T00:00:00Z")
OTHER_DAY = ("2026-04-20T00:00:00Z", "2026-04-21T00:00:00Z")


async def test_replicas_share_days_misses_and_rates(
    mock_graph: RunningMock, redis_server: RedisServer, tmp_path: Path
) -> None:
    """A day fetched through one replica is a hit on another (no Graph call), identical
    misses on all three at once make one call, a consumer's rate holds across them, and
    Redis holds no address and no canary."""
    config = cluster_config(mock_graph, redis_server.url, tmp_path / "proxy.toml")
    people = mock_graph.graph.organisation.addresses()
    async with running_replicas(config) as replicas, aiohttp.ClientSession() as session:
        a, b, _ = replicas
        mock_graph.graph.reset()
        status, first = await ask_replica(session, a, people[:2], *DAY)
        assert status == 200
        assert graph_calls(mock_graph) == 1
        status, again = await ask_replica(session, b, people[:2], *DAY)
        assert (status, again) == (200, first)
        assert graph_calls(mock_graph) == 1, "the second replica asked Graph again"
        assert await metric(session, b, "freebusy_cluster_tier_lookups_total", outcome="hit") > 0

        # Slow enough that all three are waiting at once.
        mock_graph.graph.add_fault(Fault(kind="latency", delay_ms=400, count=None))
        answers = await asyncio.gather(
            *(ask_replica(session, r, [people[2]], *OTHER_DAY) for r in replicas)
        )
        mock_graph.graph.clear_faults()
        assert {status for status, _ in answers} == {200}
        assert answers[0][1] == answers[1][1] == answers[2][1]
        assert graph_calls(mock_graph) == 2, "identical misses were fetched more than once"

        statuses = [
            (await ask_replica(session, replicas[i % 3], people[:1], *DAY, key=KEY_LIMITED))[0]
            for i in range(2 * LIMITED_RATE)
        ]
        assert statuses.count(200) == LIMITED_RATE, statuses
        assert statuses.count(429) == LIMITED_RATE

        for replica in replicas:
            async with session.get(replica.base + "/readyz") as resp:
                assert resp.status == 200
                assert (await resp.json())["checks"]["cluster"] == "ok"

    await assert_redis_names_nobody(redis_server, people)


async def test_a_replica_fetches_the_window_its_cache_asks_for(
    mock_graph: RunningMock, redis_server: RedisServer, tmp_path: Path
) -> None:
    """Days another replica already shared do not cut a mailbox's fetch short: a request's
    mailboxes go upstream together over the window its cache asked for (whole blocks of
    days), as one process would send them, not in a call per leftover day range."""
    config = cluster_config(mock_graph, redis_server.url, tmp_path / "proxy.toml")
    people = mock_graph.graph.organisation.addresses()
    later = ("2026-03-20T00:00:00Z", "2026-03-30T00:00:00Z")
    async with running_replicas(config, count=2) as (a, b), aiohttp.ClientSession() as session:
        mock_graph.graph.reset()
        # Through A: the first's days 13 to 20 March (one day asked, its block fetched).
        status, _ = await ask_replica(session, a, people[:1], *DAY)
        assert status == 200
        assert graph_calls(mock_graph) == 1
        # Through B: 20 to 29 March for both, the blocks 13 March to 5 April; B's cache lacks
        # both, Redis the first's 21 March on.
        status, both = await ask_replica(session, b, people[:2], *later)
        assert status == 200
        assert graph_calls(mock_graph) == 2, "one request's mailboxes went in separate calls"
        call = mock_graph.graph.stats()["recent"][-1]
        assert sorted(call["schedules"]) == sorted(people[:2])
        assert (call["start"], call["end"]) == ("2026-03-13T00:00:00Z", "2026-04-06T00:00:00Z")
        # What B answers is the calendar, whichever replica fetched which day.
        status, direct = await ask_replica(session, a, people[:2], *later)
        assert (status, direct) == (200, both)


async def assert_redis_names_nobody(server: RedisServer, people: list[str]) -> None:
    """Every key and every value in Redis: no address (in any case), no canary, no secret."""
    client = server.client()
    try:
        dump: list[bytes] = []
        async for key in client.scan_iter(count=1000):
            dump.append(key)
            kind = (await client.type(key)).decode()
            if kind == "string":
                dump.append(await client.get(key) or b"")
            elif kind == "zset":
                for member, _ in await client.zrange(key, 0, -1, withscores=True):
                    dump.append(member)
            elif kind == "list":
                dump.extend(await client.lrange(key, 0, -1))
            else:
                raise AssertionError(f"unexpected {kind} in Redis")
    finally:
        await client.aclose()
    assert any(key.startswith(b"fbp:d1:") for key in dump), "no day was shared at all"
    text = b"\n".join(dump).decode("utf-8", "replace").casefold()
    for address in people:
        assert address.casefold() not in text
        assert address.split("@")[0].casefold() not in text
    for marker in FORBIDDEN_MARKERS:
        assert marker.casefold() not in text
