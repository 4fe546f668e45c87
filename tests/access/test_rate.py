"""Rate limits per consumer: token buckets on an injected clock, 429 with Retry-After."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from proxy.access.consumers import new_key
from proxy.access.rate import RateLimited, TokenBuckets
from proxy.config.schema import ConsumerSettings
from proxy.core.clock import ManualClock
from proxy.core.policy import Policy
from proxy.mock import MOCK_DOMAIN, RunningMock
from tests.support.feeds import FEED_TOKEN, ICS, with_feed
from tests.support.proxies import ONE_ADDRESS, ProxyFactory, auth, proxy_settings

QUERY = {"schedules": [ONE_ADDRESS], "start": "2026-01-05T00:00:00Z", "end": "2026-01-06T00:00:00Z"}


def test_bucket_allows_a_burst_then_refills() -> None:
    """60/min: 60 at once, the 61st waits a second; a second later one more is allowed."""
    clock = ManualClock()
    buckets = TokenBuckets(clock)
    for _ in range(60):
        buckets.take("app", 60)
    with pytest.raises(RateLimited) as raised:
        buckets.take("app", 60)
    assert raised.value.retry_after == pytest.approx(1.0)
    assert raised.value.extra_headers() == {"Retry-After": "1"}
    clock.advance(1)
    buckets.take("app", 60)
    with pytest.raises(RateLimited):
        buckets.take("app", 60)


def test_buckets_are_per_consumer_and_zero_is_unlimited() -> None:
    """One consumer's exhaustion does not touch another's; rate 0 never limits."""
    buckets = TokenBuckets(ManualClock())
    buckets.take("a", 1)
    with pytest.raises(RateLimited):
        buckets.take("a", 1)
    buckets.take("b", 1)
    for _ in range(1000):
        buckets.take("c", 0)


def test_clock_stepping_back_mints_nothing() -> None:
    """A reading that goes backwards (defensive) neither refills the bucket nor breaks it."""
    clock = ManualClock()
    buckets = TokenBuckets(clock)
    buckets.take("a", 1)
    clock.now -= 3600
    with pytest.raises(RateLimited):
        buckets.take("a", 1)
    clock.advance(3600 + 60)
    buckets.take("a", 1)


async def test_over_the_rate_is_429_problem_with_retry_after(
    make_proxy: ProxyFactory, mock_graph: RunningMock
) -> None:
    """rate_per_minute = 2: the third request is 429 rate_limited, Graph is not asked;
    after Retry-After (on the injected monotonic clock) the consumer is served again."""
    key, digest = new_key()
    base = proxy_settings(mock_graph)
    limited = ConsumerSettings(
        name="slow",
        key_sha256=digest,
        allow=(f"*@{MOCK_DOMAIN}",),
        policy=Policy(rate_per_minute=2),
    )
    clock = ManualClock()
    client = await make_proxy(
        mock_graph, settings=replace(base, consumers=(*base.consumers, limited)), clock=clock
    )
    for _ in range(2):
        async with client.post("/v1/availability", json=QUERY, headers=auth(key)) as resp:
            assert resp.status == 200
    calls = mock_graph.graph.stats()["calls"]["getSchedule"]
    async with client.post("/v1/availability", json=QUERY, headers=auth(key)) as resp:
        body: dict[str, Any] = json.loads(await resp.text())
        assert resp.status == 429
        assert resp.content_type == "application/problem+json"
        assert resp.headers["Retry-After"] == "30"
        assert resp.headers["Server"] == "freebusy-proxy"
    assert body["code"] == "rate_limited"
    assert body["status"] == 429
    assert mock_graph.graph.stats()["calls"]["getSchedule"] == calls
    # Another consumer is unaffected.
    async with client.post("/v1/availability", json=QUERY, headers=auth()) as resp:
        assert resp.status == 200
    clock.advance(30)
    async with client.post("/v1/availability", json=QUERY, headers=auth(key)) as resp:
        assert resp.status == 200


async def test_every_dialect_answers_429_with_retry_after(
    make_proxy: ProxyFactory, mock_graph: RunningMock
) -> None:
    """The rate is per key across routes; Google and Graph drop-in say 429 in their own shape,
    with Retry-After too."""
    key, digest = new_key()
    base = proxy_settings(mock_graph)
    limited = ConsumerSettings(
        name="slow",
        key_sha256=digest,
        allow=(f"*@{MOCK_DOMAIN}",),
        policy=Policy(rate_per_minute=1),
    )
    client = await make_proxy(
        mock_graph, settings=replace(base, consumers=(*base.consumers, limited))
    )
    async with client.post("/v1/availability", json=QUERY, headers=auth(key)) as resp:
        assert resp.status == 200
    google = {
        "timeMin": "2026-01-05T00:00:00Z",
        "timeMax": "2026-01-06T00:00:00Z",
        "items": [{"id": ONE_ADDRESS}],
    }
    graph = {
        "schedules": [ONE_ADDRESS],
        "startTime": {"dateTime": "2026-01-05T00:00:00", "timeZone": "UTC"},
        "endTime": {"dateTime": "2026-01-06T00:00:00", "timeZone": "UTC"},
    }
    for path, body in [
        ("/calendar/v3/freeBusy", google),
        (f"/v1.0/users/{ONE_ADDRESS}/calendar/getSchedule", graph),
    ]:
        async with client.post(path, json=body, headers=auth(key)) as resp:
            text = await resp.text()
            assert resp.status == 429, text
            assert resp.headers["Retry-After"] == "60"
            assert resp.content_type == "application/json"


async def test_a_feed_has_a_bucket_of_its_own(
    make_proxy: ProxyFactory, mock_graph: RunningMock
) -> None:
    """The reproduction: a feed URL fetched again and again used up its consumer's bucket and
    locked the app's own key out. Now the feed spends a bucket of its own (at the consumer's
    rate): once it is empty the feed gets 429, and the key is still served."""
    settings = with_feed(mock_graph)
    slow = replace(
        settings.consumers[0], policy=replace(settings.consumers[0].policy, rate_per_minute=5)
    )
    client = await make_proxy(
        mock_graph, settings=replace(settings, consumers=(slow, *settings.consumers[1:]))
    )
    feed = {"token": FEED_TOKEN, "start": QUERY["start"], "end": QUERY["end"]}
    for _ in range(5):
        async with client.get(ICS, params=feed) as resp:
            assert resp.status == 200
    async with client.get(ICS, params=feed) as resp:
        assert resp.status == 429
        assert resp.headers["Retry-After"] == "12"
        assert "feed" in (await resp.json())["detail"]
    for _ in range(5):
        async with client.post("/v1/availability", json=QUERY, headers=auth()) as resp:
            assert resp.status == 200
