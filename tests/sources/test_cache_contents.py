"""What the cache holds (status/start/end and our codes, nothing else) and what it answers."""

from __future__ import annotations

import gc
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import pytest

from proxy.core.clock import MONOTONIC
from proxy.core.model import BusyItem, ErrorCode, Status, Window
from proxy.core.timefmt import parse_rfc3339
from proxy.mock import MOCK_DOMAIN, RunningMock
from proxy.observability.metrics import Metrics
from proxy.sources.cache import CachedDay
from proxy.sources.credentials import MsalAppTokens
from proxy.sources.gate import Throttle
from proxy.sources.graph import GraphScheduleSource, RetryPolicy
from proxy.sources.tls import client_ssl_context
from tests.support.leaks import FORBIDDEN_MARKERS, assert_no_leak
from tests.support.mock_graph import MockFactory
from tests.support.proxies import ask, cache_of, chain_proxy

WEEK = {"start": "2026-03-09T00:00:00Z", "end": "2026-03-16T00:00:00Z"}


async def test_cache_holds_only_status_start_end(
    aiohttp_client: Any, mock_graph: RunningMock
) -> None:
    """Every cache entry is (address, day) -> items of status/start/end, or a code; no canary."""
    client = await chain_proxy(aiohttp_client, mock_graph)
    addresses = [*mock_graph.graph.organisation.addresses()[:6], f"nobody@{MOCK_DOMAIN}"]
    status, _ = await ask(client, addresses, WEEK)
    assert status == 200
    # The upstream answers for this very query did carry subjects and locations.
    entries = cache_of(client).entries()
    # 9 to 15 March, fetched in the two blocks of 8 days on the grid holding it (5 to 20).
    assert len(entries) == 6 * 16
    # The unknown address is remembered once, apart from the days.
    assert cache_of(client).unknown() == [f"nobody@{MOCK_DOMAIN}"]
    items = 0
    for key, entry in entries:
        mailbox, day = key
        assert isinstance(mailbox, str)
        assert isinstance(day, int)
        assert type(entry) is CachedDay
        assert entry.__struct_fields__ == ("items", "error", "fetched_at", "edges")
        assert entry.error is None or type(entry.error) is ErrorCode
        assert isinstance(entry.fetched_at, float)
        assert type(entry.edges) is int
        for item in entry.items:
            items += 1
            assert type(item) is BusyItem
            assert item.__struct_fields__ == ("start", "end", "status")
            assert type(item.status) is Status
            assert type(item.start) is datetime
            assert type(item.end) is datetime
        assert_no_leak(repr(key), repr(entry))
    assert items > 0
    assert not any(marker in repr(entries) for marker in FORBIDDEN_MARKERS)
    assert {e.error for _, e in entries if e.error} == set()


def _busy_union(items: list[tuple[str, datetime, datetime]]) -> dict[str, list[tuple[Any, Any]]]:
    """Per status, the union of its intervals: what a free/busy consumer can see."""
    result: dict[str, list[tuple[Any, Any]]] = {}
    for status, start, end in sorted(items, key=lambda i: (i[0], i[1], i[2])):
        spans = result.setdefault(status, [])
        if spans and start <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], end))
        else:
            spans.append((start, end))
    return result


async def test_multi_day_answers_match_graph(aiohttp_client: Any, make_mock: MockFactory) -> None:
    """Assembled from per-day entries, any window shows exactly the free/busy Graph shows.

    Windows start and end off midnight and span DST changes (8 and 29 March 2026), so
    overnight, all-day and multi-day events are cut into days and joined back.
    """
    mock = await make_mock(org_size=30)
    client = await chain_proxy(aiohttp_client, mock)
    addresses = mock.graph.organisation.addresses()[:20]
    windows = [
        ("2026-03-05T07:30:00Z", "2026-03-12T19:45:00Z"),
        ("2026-03-06T00:00:00Z", "2026-03-09T00:00:00Z"),
        ("2026-03-26T13:00:00Z", "2026-04-02T13:00:00Z"),
        ("2026-03-01T00:00:00Z", "2026-05-15T00:00:00Z"),
    ]
    connector = aiohttp.TCPConnector(ssl=client_ssl_context(mock.ca_file))
    tokens = MsalAppTokens(**mock.client_credentials(), timeout_seconds=10, clock=MONOTONIC)
    try:
        async with aiohttp.ClientSession(connector=connector) as session:
            direct = GraphScheduleSource(
                session=session,
                tokens=tokens,
                base_url=mock.graph_base_url,
                retry=RetryPolicy(),
                gate=Throttle(
                    mailbox_concurrency=4,
                    max_concurrency=32,
                    mailbox_budget=9000,
                    clock=MONOTONIC,
                    metrics=Metrics(),
                ),
                clock=MONOTONIC,
            )
            for start, end in windows:
                window = Window(start=parse_rfc3339(start), end=parse_rfc3339(end))
                truth = await direct.get_schedules(addresses, window)
                status, body = await ask(client, addresses, {"start": start, "end": end})
                assert status == 200
                for entry in body["schedules"]:
                    got = [
                        (i["status"], parse_rfc3339(i["start"]), parse_rfc3339(i["end"]))
                        for i in entry["items"]
                    ]
                    want = [
                        (i.status.value, i.start, i.end)
                        for i in truth[entry["schedule"].casefold()].items
                    ]
                    assert _busy_union(got) == _busy_union(want), (start, entry["schedule"])
                    assert got == sorted(got, key=lambda i: (i[1], i[2], i[0]))
                    # Pieces of one event never come back cut at a midnight.
                    ends = {(s, e) for s, _, e in got}
                    for s, b, _ in got:
                        if b.hour == 0 and b.minute == 0 and b != window.start:
                            assert (s, b) not in ends
    finally:
        await tokens.close()


async def test_metrics_exposes_no_personal_data(
    aiohttp_client: Any, mock_graph: RunningMock
) -> None:
    """/metrics is Prometheus text with route templates and outcomes; no address, no canary."""
    client = await chain_proxy(aiohttp_client, mock_graph)
    addresses = mock_graph.graph.organisation.addresses()[:3]
    await ask(client, addresses)
    await ask(client, addresses)
    async with client.get("/v1/availability?schedules=" + addresses[0]) as resp:
        assert resp.status == 401
    async with client.get("/no/such/" + addresses[0]) as resp:
        assert resp.status == 404
    # Routes with an address in the path, and a dialect's (sub-app) route: labelled by template.
    async with client.get(f"/v1/schedules/{addresses[0]}/freebusy.ics") as resp:
        assert resp.status == 401
    async with client.post("/calendar/v3/freeBusy", json={}) as resp:
        assert resp.status == 401
    async with client.get("/metrics") as resp:
        assert resp.status == 200
        assert resp.content_type == "text/plain"
        text = await resp.text()
    assert_no_leak(text)
    assert "@" not in text
    assert MOCK_DOMAIN not in text
    assert (
        'freebusy_http_requests_total{method="POST",route="/v1/availability",status="200"} 2.0'
        in text
    )
    assert 'route="unmatched",status="404"' in text
    assert 'method="GET",route="/v1/schedules/{address}/freebusy.ics",status="401"' in text
    assert 'method="POST",route="/calendar/v3/freeBusy",status="401"' in text
    assert 'freebusy_upstream_calls_total{endpoint="getSchedule",outcome="200"} 1.0' in text
    assert 'freebusy_cache_lookups_total{result="hit"} 3.0' in text
    assert "freebusy_batch_schedules_bucket" in text
    assert "freebusy_breaker_state 0.0" in text


def test_cached_day_is_frozen_slotted_and_untracked() -> None:
    """Entries cannot be changed or given extra attributes after they are stored, and the
    garbage collector never walks them (a full cache is not a forest of tracked objects)."""
    start = parse_rfc3339("2026-03-16T09:00:00Z")
    entry = CachedDay(
        items=(BusyItem(start=start, end=start + timedelta(hours=1), status=Status.BUSY),),
        fetched_at=1.0,
    )
    assert not hasattr(entry, "__dict__")
    with pytest.raises(AttributeError):
        entry.items = ()  # type: ignore[misc]
    gc.collect()
    assert not gc.is_tracked(entry)
    assert not gc.is_tracked(entry.items)
    assert not gc.is_tracked(entry.items[0])
