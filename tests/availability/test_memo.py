"""The response memo: repeated requests get the same bytes, with every per-request duty kept."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from proxy.access.consumers import Consumer, new_key
from proxy.availability.memo import SIGHTINGS, MemoKey, ResponseMemo
from proxy.config.schema import AuditSettings, CacheSettings, ConsumerSettings, Settings
from proxy.core.clock import MONOTONIC, FixedWallClock, ManualClock
from proxy.core.model import Query, Window
from proxy.core.policy import Policy
from proxy.core.timefmt import parse_rfc3339
from proxy.mock import MOCK_DOMAIN, Fault, RunningMock
from proxy.web.keys import AVAILABILITY, CHAIN, CONSUMERS
from tests.support.proxies import (
    AUDIT_KEY,
    KEY_ALL,
    TEST_NOW,
    ProxyFactory,
    auth,
    graph_calls,
    proxy_settings,
    sample,
)

DAY = {"start": "2026-01-05T00:00:00Z", "end": "2026-01-06T00:00:00Z"}
BUSY_KEY, BUSY_KEY_SHA = new_key()


def people(mock: RunningMock, count: int) -> list[str]:
    """The first ``count`` mailboxes of the mock organisation."""
    return mock.graph.organisation.addresses()[:count]


async def post(
    client: TestClient[Any, Any], body: dict[str, Any], key: str = KEY_ALL
) -> tuple[int, bytes, dict[str, str]]:
    """POST /v1/availability; status, raw body and headers."""
    async with client.post("/v1/availability", json=body, headers=auth(key)) as resp:
        return resp.status, await resp.read(), dict(resp.headers)


def with_consumers(mock: RunningMock, *extra: ConsumerSettings, **fields: Any) -> Settings:
    """Test settings with more consumers and other top-level fields replaced."""
    settings = proxy_settings(mock)
    return replace(settings, consumers=settings.consumers + extra, **fields)


def limited_to(mock: RunningMock, rate_per_minute: int) -> Settings:
    """Test settings with a consumer "limited" (BUSY_KEY) allowed so many a minute."""
    limited = ConsumerSettings(
        name="limited",
        key_sha256=BUSY_KEY_SHA,
        allow=(f"*@{MOCK_DOMAIN}",),
        policy=Policy(rate_per_minute=rate_per_minute),
    )
    return with_consumers(mock, limited)


async def test_memo_hit_is_byte_identical_and_calls_nobody(
    make_proxy: ProxyFactory, mock_graph: RunningMock
) -> None:
    """The first answer is not kept (its request may never come again), the second is, and
    the third identical request is answered from the memo: same bytes, no upstream call."""
    client = await make_proxy(mock_graph)
    memo = client.app[AVAILABILITY].memo
    body = {"schedules": people(mock_graph, 3), **DAY}
    status, first, headers = await post(client, body)
    assert status == 200
    assert len(memo) == 0
    calls = graph_calls(mock_graph)
    assert (await post(client, body))[1] == first
    assert len(memo) == 1
    status, third, again = await post(client, body)
    assert status == 200
    assert third == first
    assert graph_calls(mock_graph) == calls
    assert again["Content-Type"] == headers["Content-Type"]
    assert again["Cache-Control"] == "no-store"
    assert sample(client, "freebusy_cache_lookups_total", result="hit") == 6


async def test_get_and_post_have_separate_entries(
    make_proxy: ProxyFactory, mock_graph: RunningMock
) -> None:
    """A GET for the same question answers the same, memoised under its own raw query."""
    client = await make_proxy(mock_graph)
    address = people(mock_graph, 1)[0]
    _, posted, _ = await post(client, {"schedules": [address], **DAY})
    assert (await post(client, {"schedules": [address], **DAY}))[1] == posted
    url = f"/v1/availability?schedules={address}&start={DAY['start']}&end={DAY['end']}"
    for _ in range(2):
        async with client.get(url, headers=auth()) as resp:
            assert resp.status == 200
            assert await resp.read() == posted
    assert len(client.app[AVAILABILITY].memo) == 2


async def test_rate_limit_applies_to_memo_hits(
    make_proxy: ProxyFactory, mock_graph: RunningMock
) -> None:
    """A key allowed 2 a minute gets its third identical request refused with 429."""
    client = await make_proxy(mock_graph, settings=limited_to(mock_graph, 2))
    body = {"schedules": people(mock_graph, 1), **DAY}
    assert (await post(client, body, BUSY_KEY))[0] == 200
    assert (await post(client, body, BUSY_KEY))[0] == 200
    status, problem, headers = await post(client, body, BUSY_KEY)
    assert status == 429
    assert json.loads(problem)["code"] == "rate_limited"
    assert "Retry-After" in headers


async def test_memo_hits_are_charged_what_the_request_costs(
    make_proxy: ProxyFactory, mock_graph: RunningMock
) -> None:
    """A 62-day window could take two Graph calls: a memo hit is charged two tokens as the
    question was, so a key allowed 5 a minute gets its third such request refused."""
    client = await make_proxy(mock_graph, settings=limited_to(mock_graph, 5))
    body = {
        "schedules": people(mock_graph, 1),
        "start": "2026-01-05T00:00:00Z",
        "end": "2026-03-08T00:00:00Z",
    }
    assert (await post(client, body, BUSY_KEY))[0] == 200
    assert (await post(client, body, BUSY_KEY))[0] == 200
    assert len(client.app[AVAILABILITY].memo) == 1
    status, problem, _ = await post(client, body, BUSY_KEY)
    assert status == 429
    assert json.loads(problem)["code"] == "rate_limited"
    assert (
        sample(
            client, "freebusy_consumer_requests_total", consumer="limited", outcome="rate_limited"
        )
        == 1
    )


async def test_audit_line_for_every_memo_hit(
    make_proxy: ProxyFactory, mock_graph: RunningMock, tmp_path: Path
) -> None:
    """Each request, memoised or not, writes its line: consumer, addresses, window, 0 calls."""
    path = tmp_path / "audit.jsonl"
    settings = replace(
        proxy_settings(mock_graph), audit=AuditSettings(hmac_key=AUDIT_KEY, file=path)
    )
    client = await make_proxy(mock_graph, settings=settings)
    body = {"schedules": people(mock_graph, 2), **DAY}
    for _ in range(3):
        assert (await post(client, body))[0] == 200
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) == 3
    assert lines[0]["upstream_calls"] == 1
    for line in lines[1:]:
        assert line["upstream_calls"] == 0
        assert line["consumer"] == "all"
        assert line["addresses"] == 2
        assert line["schedules"] == lines[0]["schedules"]
        assert line["window"] == {"start": DAY["start"], "end": DAY["end"]}
        assert line["outcome"] == "ok"


async def test_forget_invalidates(make_proxy: ProxyFactory, mock_graph: RunningMock) -> None:
    """After the cache forgets an address, the memoised answer is not sent again."""
    client = await make_proxy(mock_graph)
    address = people(mock_graph, 1)[0]
    body = {"schedules": [address], **DAY}
    await post(client, body)
    await post(client, body)
    assert len(client.app[AVAILABILITY].memo) == 1
    calls = graph_calls(mock_graph)
    client.app[CHAIN].cache.forget([address])
    assert (await post(client, body))[0] == 200
    assert graph_calls(mock_graph) == calls + 1


async def test_ttl_expiry_invalidates(make_proxy: ProxyFactory, mock_graph: RunningMock) -> None:
    """Once the cache days behind an answer are past their TTL, the memo asks again."""
    clock = ManualClock()
    settings = with_consumers(mock_graph, cache=CacheSettings(ttl_seconds=60))
    client = await make_proxy(mock_graph, settings=settings, clock=clock)
    body = {"schedules": people(mock_graph, 1), **DAY}
    await post(client, body)
    await post(client, body)
    assert len(client.app[AVAILABILITY].memo) == 1
    calls = graph_calls(mock_graph)
    clock.advance(60)
    await post(client, body)
    assert graph_calls(mock_graph) == calls
    clock.advance(0.5)
    await post(client, body)
    assert graph_calls(mock_graph) == calls + 1


async def test_stale_answers_are_not_memoised(
    make_proxy: ProxyFactory, mock_graph: RunningMock
) -> None:
    """An answer served stale while Graph fails is not kept; errors neither."""
    clock = ManualClock()
    cache = CacheSettings(ttl_seconds=60, stale_max_age_seconds=600)
    client = await make_proxy(
        mock_graph, settings=with_consumers(mock_graph, cache=cache), clock=clock
    )
    body = {"schedules": people(mock_graph, 1), **DAY}
    await post(client, body)
    clock.advance(61)
    mock_graph.graph.add_fault(Fault(kind="status", status=503, count=None))
    status, answer, _ = await post(client, body)
    assert status == 200
    assert json.loads(answer)["schedules"][0]["stale"] is True
    assert len(client.app[AVAILABILITY].memo) == 0
    unknown = {"schedules": [f"nobody@{MOCK_DOMAIN}"], **DAY}
    mock_graph.graph.clear_faults()
    await post(client, unknown)
    await post(client, unknown)
    assert len(client.app[AVAILABILITY].memo) == 0


async def test_policies_never_share_an_entry(
    make_proxy: ProxyFactory, mock_graph: RunningMock
) -> None:
    """The same body from a key with detail=busy gets that key's own answer, not the memo's."""
    busy = ConsumerSettings(
        name="busy",
        key_sha256=BUSY_KEY_SHA,
        allow=(f"*@{MOCK_DOMAIN}",),
        policy=Policy(detail="busy"),
    )
    client = await make_proxy(mock_graph, settings=with_consumers(mock_graph, busy))
    body = {"schedules": people(mock_graph, 3), **DAY}
    _, full, _ = await post(client, body)
    _, busy_only, _ = await post(client, body, BUSY_KEY)
    statuses = {i["status"] for s in json.loads(busy_only)["schedules"] for i in s["items"]}
    assert statuses <= {"busy"}
    assert busy_only != full
    for _ in range(2):  # kept the second time, answered from the memo the third
        assert (await post(client, body))[1] == full
        assert (await post(client, body, BUSY_KEY))[1] == busy_only
        assert len(client.app[AVAILABILITY].memo) == 2


async def test_lookback_is_checked_on_memo_hits(
    make_proxy: ProxyFactory, mock_graph: RunningMock
) -> None:
    """When the wall clock moves past what the key may look back on, the memo answers 400."""
    wall = FixedWallClock(TEST_NOW)
    client = await make_proxy(mock_graph, wall_clock=wall)
    body = {"schedules": people(mock_graph, 1), **DAY}
    assert (await post(client, body))[0] == 200
    # DAY starts 2026-01-05 00:00; the default key may look back 0 days, 5 minutes' tolerance.
    wall.advance(timedelta(days=4, minutes=5))
    assert (await post(client, body))[0] == 200
    wall.advance(timedelta(microseconds=1))
    status, problem, _ = await post(client, body)
    assert status == 400
    assert json.loads(problem)["code"] == "window_too_early"


async def test_errors_are_not_memoised(make_proxy: ProxyFactory, mock_graph: RunningMock) -> None:
    """A refused request leaves nothing behind."""
    client = await make_proxy(mock_graph)
    body = {"schedules": people(mock_graph, 1), "start": DAY["end"], "end": DAY["start"]}
    assert (await post(client, body))[0] == 400
    assert (await post(client, body))[0] == 400
    assert len(client.app[AVAILABILITY].memo) == 0


async def memo_on_cached_days(
    make_proxy: ProxyFactory, mock: RunningMock, max_bytes: int
) -> tuple[ResponseMemo, list[str], Window, Consumer]:
    """A memo of ``max_bytes`` on a proxy's cache holding DAY for three people; the people,
    DAY and the "all" key's consumer."""
    client = await make_proxy(mock)
    addresses = people(mock, 3)
    for address in addresses:  # the cache days every entry stands on
        assert (await post(client, {"schedules": [address], **DAY}))[0] == 200
    window = Window(start=parse_rfc3339(DAY["start"]), end=parse_rfc3339(DAY["end"]))
    consumer = client.app[CONSUMERS].named("all")
    memo = ResponseMemo(client.app[CHAIN].cache, clock=MONOTONIC, max_bytes=max_bytes)
    return memo, addresses, window, consumer


async def test_memo_is_bounded_in_bytes_oldest_first(
    make_proxy: ProxyFactory, mock_graph: RunningMock
) -> None:
    """Past max_bytes the oldest entries go; replacing an entry does not count it twice."""
    # Room for two entries of 1,000 body bytes (each counts its body, key and 256 bytes).
    memo, addresses, window, consumer = await memo_on_cached_days(make_proxy, mock_graph, 2 * 1300)
    keys: list[MemoKey] = [("all", "POST", address.encode()) for address in addresses]

    def put(key: MemoKey, address: str) -> None:
        query = Query(schedules=(address,), window=window)
        memo.put(key, body=b"x" * 1000, query=query, consumer=consumer, fetch_window=window, cost=1)
        # Kept from the second time its request comes (the first only noted, see below).
        memo.put(key, body=b"x" * 1000, query=query, consumer=consumer, fetch_window=window, cost=1)

    def held() -> list[bool]:
        return [memo.get(key, consumer=consumer) is not None for key in keys]

    put(keys[0], addresses[0])
    put(keys[1], addresses[1])
    assert held() == [True, True, False]
    put(keys[1], addresses[1])  # replaced, not added
    assert held() == [True, True, False]
    put(keys[2], addresses[2])
    assert held() == [False, True, True]
    assert len(memo) == 2


async def test_one_off_requests_do_not_push_out_an_answer_that_repeats(
    make_proxy: ProxyFactory, mock_graph: RunningMock
) -> None:
    """An answer is kept the second time its request comes; a flood of requests that never
    repeat (sliding windows) leaves the memo as it was, however small it is."""
    # Room for one entry of 1,000 body bytes.
    memo, addresses, window, consumer = await memo_on_cached_days(make_proxy, mock_graph, 1300)
    query = Query(schedules=(addresses[0],), window=window)
    repeated: MemoKey = ("all", "POST", b"the request that repeats")

    def put(key: MemoKey) -> None:
        memo.put(key, body=b"x" * 1000, query=query, consumer=consumer, fetch_window=window, cost=1)

    put(repeated)
    assert memo.get(repeated, consumer=consumer) is None
    assert len(memo) == 0
    put(repeated)
    assert memo.get(repeated, consumer=consumer) is not None
    for n in range(1000):
        put(("all", "POST", b"sliding %d" % n))
    assert memo.get(repeated, consumer=consumer) is not None
    assert len(memo) == 1
    # Past both generations of sightings a request counts as new again, nothing more.
    for n in range(2 * SIGHTINGS):
        put(("all", "POST", b"flood %d" % n))
    assert len(memo) == 1
    put(("all", "POST", b"sliding 0"))
    assert len(memo) == 1
    assert memo.get(repeated, consumer=consumer) is not None


async def test_an_entry_is_only_for_the_very_consumer_it_was_admitted_for(
    make_proxy: ProxyFactory, mock_graph: RunningMock
) -> None:
    """A memo hit skips the allowlist its first admission checked, so another consumer of the
    same name and policy but another allowlist finds nothing, and the entry goes."""
    memo, addresses, window, consumer = await memo_on_cached_days(make_proxy, mock_graph, 4096)
    key: MemoKey = ("all", "POST", b"asked twice")
    query = Query(schedules=(addresses[0],), window=window)
    for _ in range(2):
        memo.put(key, body=b"x", query=query, consumer=consumer, fetch_window=window, cost=1)
    other = replace(consumer, exact=frozenset(), domains=frozenset())
    assert other.policy is consumer.policy
    assert memo.get(key, consumer=other) is None
    assert memo.get(key, consumer=consumer) is None
