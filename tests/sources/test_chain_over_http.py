"""Cache, singleflight, batching, throttling and the breaker, end to end against the mock."""

from __future__ import annotations

import asyncio
from typing import Any

from proxy.config.schema import BatchingSettings, CacheSettings, ThrottleSettings
from proxy.core.clock import ManualClock
from proxy.mock import MOCK_DOMAIN, Fault, RunningMock
from tests.support.mock_graph import MockFactory
from tests.support.proxies import DAY, NEVER_MS, ask, cache_of, chain_proxy, graph_calls, sample
from tests.support.waiting import until

HOLD = Fault(kind="latency", delay_ms=600_000, count=None)


def people(mock: RunningMock, count: int, skip: int = 0) -> list[str]:
    """``count`` mailboxes of the mock organisation after the first ``skip``."""
    return mock.graph.organisation.addresses()[skip : skip + count]


def day(n: int) -> dict[str, str]:
    """The UTC day 2026-03-n as a window."""
    return {"start": f"2026-03-{n:02d}T00:00:00Z", "end": f"2026-03-{n + 1:02d}T00:00:00Z"}


async def test_repeat_request_is_served_from_memory(
    aiohttp_client: Any, mock_graph: RunningMock
) -> None:
    """The same question twice costs one getSchedule call and gets the same answer."""
    client = await chain_proxy(aiohttp_client, mock_graph)
    addresses = people(mock_graph, 3)
    first = await ask(client, addresses)
    second = await ask(client, addresses)
    assert first == second
    assert first[0] == 200
    assert graph_calls(mock_graph) == 1
    assert sample(client, "freebusy_cache_lookups_total", result="hit") == 3


async def test_sliding_windows_share_entries(aiohttp_client: Any, mock_graph: RunningMock) -> None:
    """ "The next 24 hours" asked an hour later needs no Graph call: it lies in cached days."""
    client = await chain_proxy(aiohttp_client, mock_graph)
    addresses = people(mock_graph, 2)
    status, _ = await ask(
        client, addresses, {"start": "2026-03-16T09:00:00Z", "end": "2026-03-17T09:00:00Z"}
    )
    assert status == 200
    calls = graph_calls(mock_graph)
    status, body = await ask(
        client, addresses, {"start": "2026-03-16T10:00:00Z", "end": "2026-03-17T10:00:00Z"}
    )
    assert status == 200
    assert graph_calls(mock_graph) == calls
    for entry in body["schedules"]:
        for item in entry["items"]:
            assert "2026-03-16T10:00:00Z" <= item["start"] < item["end"] <= "2026-03-17T10:00:00Z"


async def test_a_miss_fetches_whole_blocks(aiohttp_client: Any, mock_graph: RunningMock) -> None:
    """ "Today" fetches its block of 8 days on the calendar's grid (13 to 20 March), "the next
    7 days" the next block for the days beyond it, and then every question up to that block's
    end is answered from memory."""
    client = await chain_proxy(aiohttp_client, mock_graph)
    addresses = people(mock_graph, 2)
    assert (await ask(client, addresses, {**DAY, "start": "2026-03-16T15:00:00Z"}))[0] == 200
    week = {"start": "2026-03-16T15:00:00Z", "end": "2026-03-23T15:00:00Z"}
    assert (await ask(client, addresses, week))[0] == 200
    later = {"start": "2026-03-14T00:00:00Z", "end": "2026-03-29T00:00:00Z"}
    assert (await ask(client, addresses, later))[0] == 200
    windows = [(e["start"], e["end"]) for e in mock_graph.graph.stats()["recent"]]
    assert windows == [
        ("2026-03-13T00:00:00Z", "2026-03-21T00:00:00Z"),
        ("2026-03-21T00:00:00Z", "2026-03-29T00:00:00Z"),
    ]


async def test_concurrent_identical_requests_make_one_call(
    aiohttp_client: Any, mock_graph: RunningMock
) -> None:
    """N concurrent identical requests fold into a single upstream call (singleflight)."""
    client = await chain_proxy(aiohttp_client, mock_graph)
    addresses = people(mock_graph, 3)
    mock_graph.graph.add_fault(HOLD)
    n = 10
    tasks = [asyncio.create_task(ask(client, addresses)) for _ in range(n)]
    # All but the first find the fetch in flight for each of the 3 mailbox-days.
    await until(
        lambda: (
            sample(client, "freebusy_cache_lookups_total", result="coalesced") == 3 * (n - 1)
            and graph_calls(mock_graph) >= 1
        )
    )
    mock_graph.graph.clear_faults()
    answers = await asyncio.gather(*tasks)
    assert graph_calls(mock_graph) == 1
    assert all(answer == answers[0] for answer in answers)
    assert answers[0][0] == 200


async def test_concurrent_misses_for_different_mailboxes_are_batched(
    aiohttp_client: Any, mock_graph: RunningMock
) -> None:
    """Four concurrent requests for 5 different people each share one 20-schedule call."""
    client = await chain_proxy(
        aiohttp_client, mock_graph, batching=BatchingSettings(wait_ms=NEVER_MS)
    )
    # A call in flight makes the batcher wait for company (an idle proxy sends at once).
    blocker = people(mock_graph, 1, skip=30)[0]
    mock_graph.graph.add_fault(Fault(kind="latency", delay_ms=600_000, count=None, mailbox=blocker))
    # In another block of 8 days than the groups' (13 to 20 March): a window of its own.
    held = asyncio.create_task(ask(client, [blocker], day(24)))
    await until(lambda: graph_calls(mock_graph) == 1)
    groups = [people(mock_graph, 5, skip=5 * i) for i in range(4)]
    answers = await asyncio.gather(*(ask(client, group) for group in groups))
    assert [status for status, _ in answers] == [200] * 4
    recent = mock_graph.graph.stats()["recent"]
    batched = [entry for entry in recent if entry["start"].startswith("2026-03-13")]
    assert len(batched) == 1
    assert sorted(s.casefold() for s in batched[0]["schedules"]) == sorted(
        a.casefold() for group in groups for a in group
    )
    mock_graph.graph.clear_faults()
    assert (await held)[0] == 200
    assert graph_calls(mock_graph) == 2
    assert sample(client, "freebusy_batch_callers_sum") >= 4


async def test_per_mailbox_concurrency_at_most_four_under_load(
    aiohttp_client: Any, mock_graph: RunningMock
) -> None:
    """Twelve concurrent misses for one mailbox: four in flight, the rest queue in the proxy."""
    client = await chain_proxy(aiohttp_client, mock_graph, cache=CacheSettings(min_fetch_days=1))
    address = people(mock_graph, 1)
    mock_graph.graph.add_fault(HOLD)
    tasks = [asyncio.create_task(ask(client, address, day(d))) for d in range(1, 13)]
    await until(
        lambda: (
            sample(client, "freebusy_throttle_events_total", event="mailbox_wait") == 8
            and graph_calls(mock_graph) == 4
        )
    )
    mock_graph.graph.clear_faults()
    answers = await asyncio.gather(*tasks)
    assert all(status == 200 for status, _ in answers)
    stats = mock_graph.graph.stats()
    assert stats["calls"]["getSchedule"] == 12
    assert stats["max_concurrent_per_mailbox"] == 4
    assert stats["breaches"]["concurrency"] == 0


async def test_global_concurrency_limit(aiohttp_client: Any, mock_graph: RunningMock) -> None:
    """With max_concurrency 2, five misses for five mailboxes put only two calls in flight."""
    client = await chain_proxy(
        aiohttp_client,
        mock_graph,
        throttle=ThrottleSettings(max_concurrency=2),
        batching=BatchingSettings(wait_ms=0),
    )
    mock_graph.graph.add_fault(HOLD)
    tasks = [asyncio.create_task(ask(client, [a], day(3))) for a in people(mock_graph, 5)]
    await until(
        lambda: (
            sample(client, "freebusy_throttle_events_total", event="global_wait") == 3
            and graph_calls(mock_graph) == 2
        )
    )
    mock_graph.graph.clear_faults()
    assert [status for status, _ in await asyncio.gather(*tasks)] == [200] * 5
    assert graph_calls(mock_graph) == 5


async def test_mailbox_budget_refuses_calls_past_it(
    aiohttp_client: Any, mock_graph: RunningMock
) -> None:
    """Past its per-mailbox budget the proxy does not call Graph and reports throttled."""
    client = await chain_proxy(
        aiohttp_client,
        mock_graph,
        cache=CacheSettings(min_fetch_days=1),
        throttle=ThrottleSettings(mailbox_budget=2),
        max_retries=0,
    )
    address = people(mock_graph, 1)
    assert (await ask(client, address, day(1)))[0] == 200
    assert (await ask(client, address, day(2)))[0] == 200
    status, body = await ask(client, address, day(3))
    assert status == 502
    assert body["code"] == "throttled"
    assert graph_calls(mock_graph) == 2
    assert sample(client, "freebusy_throttle_events_total", event="mailbox_budget") == 1


async def test_ttl_expiry_uses_the_clock(aiohttp_client: Any, mock_graph: RunningMock) -> None:
    """An entry is fresh up to ttl_seconds and fetched again after, by the injected clock."""
    clock = ManualClock()
    client = await chain_proxy(
        aiohttp_client, mock_graph, clock=clock, cache=CacheSettings(ttl_seconds=60)
    )
    address = people(mock_graph, 1)
    await ask(client, address)
    clock.advance(60)
    await ask(client, address)
    assert graph_calls(mock_graph) == 1
    clock.advance(1)
    await ask(client, address)
    assert graph_calls(mock_graph) == 2


async def test_entries_are_dropped_once_too_old_to_serve(
    aiohttp_client: Any, mock_graph: RunningMock
) -> None:
    """Past ttl + stale_max_age an entry leaves memory, even if nothing replaces it."""
    clock = ManualClock()
    client = await chain_proxy(
        aiohttp_client,
        mock_graph,
        clock=clock,
        cache=CacheSettings(ttl_seconds=60, stale_max_age_seconds=60),
    )
    first, second = people(mock_graph, 2)
    await ask(client, [first])
    clock.advance(100)
    await ask(client, [second])
    assert {key[0] for key, _ in cache_of(client).entries()} == {first, second}
    clock.advance(21)
    await ask(client, [second])  # a hit: no fetch, yet the old entries go
    assert {key[0] for key, _ in cache_of(client).entries()} == {second}


async def test_not_found_is_cached(aiohttp_client: Any, mock_graph: RunningMock) -> None:
    """An unknown address answers not_found from memory the second time."""
    client = await chain_proxy(aiohttp_client, mock_graph)
    schedules = [people(mock_graph, 1)[0], f"nobody@{MOCK_DOMAIN}"]
    first = await ask(client, schedules)
    calls = graph_calls(mock_graph)
    second = await ask(client, schedules)
    assert first == second
    assert second[1]["schedules"][1]["error"] == {"code": "not_found"}
    assert graph_calls(mock_graph) == calls


async def test_transient_errors_are_not_cached(
    aiohttp_client: Any, mock_graph: RunningMock
) -> None:
    """A schedule that failed is asked again on the next request."""
    client = await chain_proxy(aiohttp_client, mock_graph, max_retries=0)
    addresses = people(mock_graph, 25)
    mock_graph.graph.add_fault(
        Fault(kind="status", status=503, retry_after="0", schedule=addresses[22], count=1)
    )
    status, body = await ask(client, addresses)
    assert status == 200
    assert body["schedules"][22]["error"] == {"code": "upstream_unavailable"}
    calls = graph_calls(mock_graph)
    status, body = await ask(client, addresses)
    assert body["schedules"][22]["error"] is None
    assert graph_calls(mock_graph) == calls + 1


async def test_stale_served_within_limit_and_never_beyond(
    aiohttp_client: Any, mock_graph: RunningMock
) -> None:
    """While Graph fails, entries up to stale_max_age past their TTL are served, flagged."""
    clock = ManualClock()
    client = await chain_proxy(
        aiohttp_client,
        mock_graph,
        clock=clock,
        cache=CacheSettings(ttl_seconds=60, stale_max_age_seconds=300),
        max_retries=0,
    )
    addresses = people(mock_graph, 2)
    status, fresh = await ask(client, addresses)
    assert status == 200
    assert [entry["stale"] for entry in fresh["schedules"]] == [False, False]
    mock_graph.graph.add_fault(Fault(kind="status", status=503, retry_after="0", count=None))
    clock.advance(60 + 300)
    status, stale = await ask(client, addresses)
    assert status == 200
    assert [entry["stale"] for entry in stale["schedules"]] == [True, True]
    assert [e["items"] for e in stale["schedules"]] == [e["items"] for e in fresh["schedules"]]
    assert sample(client, "freebusy_cache_lookups_total", result="stale") == 2
    clock.advance(0.001)
    status, body = await ask(client, addresses)
    assert status == 502
    assert body["code"] == "upstream_unavailable"


async def test_stale_off_by_default(aiohttp_client: Any, mock_graph: RunningMock) -> None:
    """Without stale_max_age_seconds an expired entry is never served."""
    clock = ManualClock()
    client = await chain_proxy(aiohttp_client, mock_graph, clock=clock, max_retries=0)
    addresses = people(mock_graph, 1)
    assert (await ask(client, addresses))[0] == 200
    mock_graph.graph.add_fault(Fault(kind="status", status=503, retry_after="0", count=None))
    clock.advance(61)
    status, body = await ask(client, addresses)
    assert status == 502
    assert body["code"] == "upstream_unavailable"


async def test_stale_only_for_the_schedules_that_failed(
    aiohttp_client: Any, mock_graph: RunningMock
) -> None:
    """A schedule Graph failed for is served stale; a schedule never seen reports its error."""
    clock = ManualClock()
    client = await chain_proxy(
        aiohttp_client,
        mock_graph,
        clock=clock,
        cache=CacheSettings(ttl_seconds=60, stale_max_age_seconds=300),
        max_retries=0,
    )
    known, unseen = people(mock_graph, 2)
    assert (await ask(client, [known]))[0] == 200
    clock.advance(120)
    mock_graph.graph.add_fault(Fault(kind="status", status=503, retry_after="0", count=None))
    status, body = await ask(client, [known, unseen])
    assert status == 200
    first, second = body["schedules"]
    assert first["stale"] is True
    assert first["error"] is None
    assert second == {
        "schedule": unseen,
        "items": [],
        "error": {"code": "upstream_unavailable"},
        "stale": False,
    }


def breaker_state(client: Any) -> float:
    """The breaker gauge as /metrics shows it: 0 closed, 1 half-open, 2 open."""
    return sample(client, "freebusy_breaker_state")


async def test_breaker_opens_half_opens_and_closes(
    aiohttp_client: Any, mock_graph: RunningMock
) -> None:
    """Failures open the breaker (Graph not asked); after the cool-down one probe decides."""
    clock = ManualClock()
    client = await chain_proxy(
        aiohttp_client,
        mock_graph,
        clock=clock,
        throttle=ThrottleSettings(breaker_failures=2, breaker_cool_down_seconds=30),
        max_retries=0,
    )
    a, b, c, d = ([x] for x in people(mock_graph, 4))
    mock_graph.graph.add_fault(Fault(kind="status", status=500, count=None))
    assert (await ask(client, a))[0] == 502
    assert breaker_state(client) == 0
    assert (await ask(client, b))[0] == 502
    assert breaker_state(client) == 2
    calls = graph_calls(mock_graph)
    status, body = await ask(client, c)
    assert (status, body["code"]) == (502, "upstream_unavailable")
    assert graph_calls(mock_graph) == calls
    # Cool-down over, Graph still failing: the one probe fails and the breaker reopens.
    clock.advance(30)
    assert breaker_state(client) == 1
    assert (await ask(client, c))[0] == 502
    assert graph_calls(mock_graph) == calls + 1
    assert breaker_state(client) == 2
    assert (await ask(client, c))[0] == 502
    assert graph_calls(mock_graph) == calls + 1
    # Next cool-down, Graph healthy: a held probe; meanwhile others are refused at once.
    clock.advance(30)
    mock_graph.graph.clear_faults()
    mock_graph.graph.add_fault(HOLD)
    probe = asyncio.create_task(ask(client, c))
    await until(lambda: graph_calls(mock_graph) == calls + 2)
    status, body = await ask(client, d)
    assert (status, body["code"]) == (502, "upstream_unavailable")
    assert graph_calls(mock_graph) == calls + 2
    mock_graph.graph.clear_faults()
    assert (await probe)[0] == 200
    assert breaker_state(client) == 0
    assert (await ask(client, d))[0] == 200
    assert sample(client, "freebusy_throttle_events_total", event="breaker_rejected") == 3


async def test_throttling_does_not_open_the_breaker(
    aiohttp_client: Any, mock_graph: RunningMock
) -> None:
    """One mailbox over its budget is throttled alone; the breaker stays closed for others."""
    client = await chain_proxy(
        aiohttp_client,
        mock_graph,
        cache=CacheSettings(min_fetch_days=1),
        throttle=ThrottleSettings(mailbox_budget=1, breaker_failures=1),
        max_retries=0,
    )
    busy, other = people(mock_graph, 2)
    assert (await ask(client, [busy], day(1)))[0] == 200
    for n in range(2, 5):
        status, body = await ask(client, [busy], day(n))
        assert (status, body["code"]) == (502, "throttled")
    assert breaker_state(client) == 0
    assert (await ask(client, [other], day(1)))[0] == 200


async def test_open_breaker_serves_stale(aiohttp_client: Any, mock_graph: RunningMock) -> None:
    """With the breaker open, cached mailboxes are answered stale without asking Graph."""
    clock = ManualClock()
    client = await chain_proxy(
        aiohttp_client,
        mock_graph,
        clock=clock,
        cache=CacheSettings(ttl_seconds=60, stale_max_age_seconds=600),
        throttle=ThrottleSettings(breaker_failures=1, breaker_cool_down_seconds=300),
        max_retries=0,
    )
    cached, other = people(mock_graph, 2)
    assert (await ask(client, [cached]))[0] == 200
    mock_graph.graph.add_fault(Fault(kind="status", status=500, count=None))
    assert (await ask(client, [other]))[0] == 502
    assert breaker_state(client) == 2
    clock.advance(120)
    calls = graph_calls(mock_graph)
    status, body = await ask(client, [cached])
    assert status == 200
    assert body["schedules"][0]["stale"] is True
    assert graph_calls(mock_graph) == calls


async def test_forget_drops_a_mailbox(aiohttp_client: Any, mock_graph: RunningMock) -> None:
    """cache.forget() removes every day cached for an address; the next request refetches."""
    client = await chain_proxy(aiohttp_client, mock_graph)
    keep, drop = people(mock_graph, 2)
    # 16 to 22 March: two blocks of 8 days on the grid (13 to 28 March) are fetched.
    week = {"start": "2026-03-16T00:00:00Z", "end": "2026-03-23T00:00:00Z"}
    await ask(client, [keep, drop], week)
    cache = cache_of(client)
    assert cache.forget([drop.upper()]) == 16
    assert {key[0] for key, _ in cache.entries()} == {keep.casefold()}
    calls = graph_calls(mock_graph)
    await ask(client, [keep, drop], week)
    assert graph_calls(mock_graph) == calls + 1


async def test_one_request_has_at_most_four_calls_in_flight(
    aiohttp_client: Any, make_mock: MockFactory
) -> None:
    """60 addresses over 90 days take six getSchedule calls (three chunks of 20, two slices
    of the window): four at a time are in flight, never all six."""
    mock_graph = await make_mock(org_size=60)
    client = await chain_proxy(aiohttp_client, mock_graph)
    everyone = people(mock_graph, 60)
    window = {"start": "2026-03-16T00:00:00Z", "end": "2026-06-14T00:00:00Z"}
    mock_graph.graph.add_fault(Fault(kind="latency", delay_ms=300, count=None))
    gate = mock_graph.graph.gate
    asked = asyncio.create_task(ask(client, everyone, window))
    seen = 0
    # Sampled while the calls hold: six at once would show for 300 ms.
    while not asked.done():
        seen = max(seen, sum(gate.in_flight(person) for person in everyone))
        await asyncio.sleep(0.002)
    mock_graph.graph.clear_faults()
    assert (await asked)[0] == 200
    assert graph_calls(mock_graph) == 6
    assert seen == 4


async def test_large_org_mixed_load_respects_graph_limits(
    aiohttp_client: Any, make_mock: MockFactory
) -> None:
    """Sliding windows over many mailboxes from 30 clients: no 20/62-day/4-concurrent breach."""
    mock = await make_mock(org_size=120)
    client = await chain_proxy(aiohttp_client, mock)
    everyone = mock.graph.organisation.addresses()
    requests = [
        (
            [everyone[(i * 7 + k) % len(everyone)] for k in range(1 + i % 4)],
            {
                "start": f"2026-03-{10 + i % 5:02d}T{i % 24:02d}:00:00Z",
                "end": f"2026-03-{17 + i % 5:02d}T{i % 24:02d}:00:00Z",
            },
        )
        for i in range(150)
    ]
    semaphore = asyncio.Semaphore(30)

    async def one(schedules: list[str], window: dict[str, str]) -> int:
        async with semaphore:
            return (await ask(client, schedules, window))[0]

    statuses = await asyncio.gather(*(one(s, w) for s, w in requests))
    assert statuses == [200] * len(requests)
    stats = mock.graph.stats()
    assert stats["breaches"] == {
        "too_many_schedules": 0,
        "window_too_long": 0,
        "concurrency": 0,
        "rate": 0,
    }
    assert stats["calls"]["getSchedule"] < len(requests)
