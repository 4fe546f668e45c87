"""Graph's per-mailbox limits hold across three proxy processes: concurrency and the ten-minute
budget under load, a killed replica's leases, and Redis going away and coming back."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path

import aiohttp

from proxy.core.timefmt import format_utc
from proxy.mock import Fault, RunningMock
from tests.support.mock_graph import MockFactory
from tests.support.proxies import graph_calls
from tests.support.redis_server import RedisServer
from tests.support.replicas import (
    Replica,
    ask_replica,
    cluster_config,
    metric,
    running_replicas,
)
from tests.support.waiting import eventually, until

FIRST = datetime(2018, 1, 1, tzinfo=UTC)
# 8-day blocks between FIRST and what the consumers may ask (3660 days either side of now).
BLOCKS = 800


def block(n: int) -> tuple[str, str]:
    """One day in the n-th 8-day block (a miss of its own: the cache reaches 8 days ahead)."""
    start = FIRST + timedelta(days=8 * (n % BLOCKS))
    return format_utc(start), format_utc(start + timedelta(days=1))


async def test_concurrency_and_budget_hold_across_replicas(
    make_mock: MockFactory, redis_server: RedisServer, tmp_path: Path
) -> None:
    """24 concurrent misses for one mailbox over three replicas: never more than 4 calls in
    flight at the mock, and exactly the shared budget's 12 calls in its ten minutes."""
    mock = await make_mock(mailbox_rate_limit=12)
    config = cluster_config(
        mock, redis_server.url, tmp_path / "proxy.toml", extra="[throttle]\nmailbox_budget = 12\n"
    )
    person = mock.graph.organisation.addresses()[0]
    async with running_replicas(config) as replicas, aiohttp.ClientSession() as session:
        mock.graph.reset()
        mock.graph.add_fault(Fault(kind="latency", mailbox=person, delay_ms=150, count=None))
        answers = await asyncio.gather(
            *(ask_replica(session, replicas[n % 3], [person], *block(n)) for n in range(24))
        )
        stats = mock.graph.stats()
    assert stats["breaches"]["concurrency"] == 0
    assert stats["breaches"]["rate"] == 0
    assert stats["max_concurrent_per_mailbox"] == 4
    assert stats["calls"]["getSchedule"] == 12
    assert [status for status, _ in answers].count(200) == 12


async def test_a_killed_replicas_leases_expire(
    mock_graph: RunningMock, redis_server: RedisServer, tmp_path: Path
) -> None:
    """A replica killed while holding all four of a mailbox's slots holds them only for the
    lease time: another replica waits for them, then calls. (Misses are not forwarded here,
    so the calls holding the slots are surely the killed replica's own.)"""
    config = cluster_config(
        mock_graph, redis_server.url, tmp_path / "proxy.toml", extra="forward_misses = false\n"
    )
    person = mock_graph.graph.organisation.addresses()[1]
    gate = mock_graph.graph.gate
    async with running_replicas(config, count=2) as (a, b), aiohttp.ClientSession() as session:
        mock_graph.graph.add_fault(Fault(kind="latency", mailbox=person, delay_ms=60_000, count=4))
        held = [
            asyncio.ensure_future(ask_replica(session, a, [person], *block(n))) for n in range(4)
        ]
        await until(lambda: gate.in_flight(person) == 4)
        a.kill()
        await a.process.wait()
        mock_graph.graph.clear_faults()
        await until(lambda: gate.in_flight(person) == 0)
        for task in held:
            task.cancel()
        await asyncio.gather(*held, return_exceptions=True)
        calls = graph_calls(mock_graph)
        status, _ = await ask_replica(session, b, [person], *block(10))
        waited = await metric(session, b, "freebusy_throttle_events_total", event="mailbox_wait")
    assert status == 200
    assert waited >= 1, "the other replica did not wait for the killed one's leases"
    assert graph_calls(mock_graph) == calls + 1
    assert mock_graph.graph.stats()["breaches"]["concurrency"] == 0


async def test_redis_stopped_and_restarted_mid_load(
    mock_graph: RunningMock, redis_server: RedisServer, tmp_path: Path
) -> None:
    """Redis killed under load and started again: every answer a 200, no limit breached at
    Graph, /readyz says degraded (and stays ready), a metric and a log line say so, and the
    replicas share again once it is back."""
    config = cluster_config(mock_graph, redis_server.url, tmp_path / "proxy.toml")
    people = mock_graph.graph.organisation.addresses()[:2]
    statuses: list[int] = []
    blocks = count()
    stop = asyncio.Event()
    async with running_replicas(config) as replicas, aiohttp.ClientSession() as session:
        mock_graph.graph.reset()
        mock_graph.graph.add_fault(Fault(kind="latency", delay_ms=30, count=None))

        async def client(n: int) -> None:
            while not stop.is_set():
                k = next(blocks)
                status, _ = await ask_replica(
                    session, replicas[(n + k) % 3], [people[k % 2]], *block(k)
                )
                statuses.append(status)

        load = [asyncio.ensure_future(client(n)) for n in range(9)]
        try:
            await until(lambda: len(statuses) >= 30)
            await redis_server.stop()
            await until_cluster(session, replicas, "degraded")
            assert [await metric(session, r, "freebusy_cluster_degraded") for r in replicas] == [
                1.0
            ] * 3
            degraded_at = len(statuses)
            await until(lambda: len(statuses) >= degraded_at + 30)
            await redis_server.start()
            await until_cluster(session, replicas, "ok")
            rejoined_at = len(statuses)
            await until(lambda: len(statuses) >= rejoined_at + 30)
        finally:
            stop.set()
            await asyncio.gather(*load)
        mock_graph.graph.clear_faults()
        stats = mock_graph.graph.stats()
        shared = [
            await metric(session, r, "freebusy_cluster_round_trips_total", purpose="lease")
            for r in replicas
        ]
    assert set(statuses) == {200}, f"{len(statuses) - statuses.count(200)} answers not 200"
    assert stats["breaches"] == {
        "too_many_schedules": 0, "window_too_long": 0, "concurrency": 0, "rate": 0,
    }  # fmt: skip
    assert all(n > 0 for n in shared)
    for replica in replicas:
        messages = [record["message"] for record in replica.records()]
        assert any("Redis unreachable" in m for m in messages)
        assert any("sharing through Redis again" in m for m in messages)


async def until_cluster(
    session: aiohttp.ClientSession, replicas: list[Replica], state: str
) -> None:
    """Until every replica's /readyz says ``state`` for the cluster, ready all along."""

    async def reached() -> bool:
        found = []
        for replica in replicas:
            async with session.get(replica.base + "/readyz") as resp:
                assert resp.status == 200, "a degraded cluster took a replica out of service"
                body = await resp.json()
                assert body["status"] == "ready"
                found.append(body["checks"]["cluster"])
        return found == [state] * len(replicas)

    await eventually(reached)


async def test_after_redis_fails_no_call_starts_before_leased_ones_are_over(
    mock_graph: RunningMock, redis_server: RedisServer, tmp_path: Path
) -> None:
    """Four calls in flight under leases when Redis dies: another replica, falling back to
    its local limits, waits out the lease time before calling, so Graph never sees five."""
    config = cluster_config(mock_graph, redis_server.url, tmp_path / "proxy.toml")
    person = mock_graph.graph.organisation.addresses()[2]
    gate = mock_graph.graph.gate
    async with running_replicas(config, count=2) as (a, b), aiohttp.ClientSession() as session:
        mock_graph.graph.add_fault(Fault(kind="latency", mailbox=person, delay_ms=1500, count=4))
        held = [
            asyncio.ensure_future(ask_replica(session, a, [person], *block(n))) for n in range(4)
        ]
        await until(lambda: gate.in_flight(person) == 4)
        await redis_server.stop()
        late = await ask_replica(session, b, [person], *block(9))
        answers = [late, *await asyncio.gather(*held)]
    assert {status for status, _ in answers} == {200}
    assert mock_graph.graph.stats()["breaches"]["concurrency"] == 0
