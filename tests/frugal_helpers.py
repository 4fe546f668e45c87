"""Helpers for the cache/batching/throttling tests: a configurable proxy, metrics, waiting."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from aiohttp.test_utils import TestClient

from proxy.config.schema import BatchingSettings, CacheSettings, ThrottleSettings
from proxy.core.clock import MONOTONIC, Clock, FixedWallClock
from proxy.mock import RunningMock
from proxy.web.app import init_app
from proxy.web.keys import CACHE, METRICS
from tests.conftest import TEST_NOW, assert_no_leak, auth, proxy_settings

DAY = {"start": "2026-03-16T00:00:00Z", "end": "2026-03-17T00:00:00Z"}
# Far enough that a batch only ever goes because it is full (no timer races in tests).
NEVER_MS = 600_000.0


async def frugal_proxy(
    aiohttp_client: Any,
    mock: RunningMock,
    *,
    clock: Clock = MONOTONIC,
    cache: CacheSettings | None = None,
    batching: BatchingSettings | None = None,
    throttle: ThrottleSettings | None = None,
    **graph: Any,
) -> TestClient[Any, Any]:
    """The real proxy app on a real socket, with the given frugality settings and clock."""
    settings = replace(
        proxy_settings(mock, **graph),
        cache=cache or CacheSettings(),
        batching=batching or BatchingSettings(),
        throttle=throttle or ThrottleSettings(),
    )
    app = init_app(settings, clock=clock, wall_clock=FixedWallClock(TEST_NOW))
    client: TestClient[Any, Any] = await aiohttp_client(app)
    return client


async def ask(
    client: TestClient[Any, Any], schedules: list[str], window: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    """POST /v1/availability; return status and parsed body, checked for leaks."""
    body = {"schedules": schedules, **(window or DAY)}
    async with client.post("/v1/availability", json=body, headers=auth()) as resp:
        text = await resp.text()
        assert_no_leak(text)
        return resp.status, json.loads(text)


def sample(client: TestClient[Any, Any], name: str, **labels: str) -> float:
    """A metric's current value in the proxy's registry (0 when never set)."""
    value = client.app[METRICS].registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def graph_calls(mock: RunningMock) -> int:
    """getSchedule calls the mock has received."""
    return int(mock.graph.stats()["calls"]["getSchedule"])


def cache_of(client: TestClient[Any, Any]) -> Any:
    """The proxy's cache (for inspecting what it holds)."""
    return client.app[CACHE]


async def until(condition: Callable[[], bool]) -> None:
    """Wait until ``condition()`` holds (polling an observable state, not guessing a delay)."""
    try:
        async with asyncio.timeout(10):
            # The states watched (mock counters, metrics) have no event to wait on.
            while not condition():  # noqa: ASYNC110
                await asyncio.sleep(0.002)
    except TimeoutError:
        raise AssertionError("the expected state was never reached") from None
