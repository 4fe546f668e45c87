"""The one way tests build a proxy: settings for a mock, and the real app on a real socket."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from proxy.access.consumers import new_key
from proxy.config.schema import (
    AuditSettings,
    BatchingSettings,
    CacheSettings,
    ConsumerSettings,
    GraphSettings,
    Settings,
    ThrottleSettings,
)
from proxy.core.clock import MONOTONIC, Clock, FixedWallClock, WallClock
from proxy.core.policy import Policy
from proxy.mock import MOCK_CLIENT_ID, MOCK_CLIENT_SECRET, MOCK_DOMAIN, MOCK_TENANT_ID, RunningMock
from proxy.web.app import init_app, runner_kwargs
from proxy.web.keys import CHAIN, METRICS

ProxyFactory = Callable[..., Awaitable[TestClient[Any, Any]]]
"""The make_proxy fixture: the proxy for a mock, with settings, clocks or [graph] fields."""

# Keys for the consumers every proxy under test knows.
KEY_ALL, KEY_ALL_SHA = new_key()
KEY_ONE, KEY_ONE_SHA = new_key()
ONE_ADDRESS = f"adele.vance@{MOCK_DOMAIN}"
# The audit trail's HMAC key in tests (what FREEBUSY_PROXY_AUDIT_KEY holds in production).
AUDIT_KEY = "test-audit-key-" + "k" * 32
# "Now" for every proxy under test: the tests' fixed dates (2026-01 to 2026-04) lie ahead.
TEST_NOW = datetime(2026, 1, 1, tzinfo=UTC)
DAY = {"start": "2026-03-16T00:00:00Z", "end": "2026-03-17T00:00:00Z"}


def consumer(name: str, key_sha256: str, allow: tuple[str, ...], **policy: Any) -> ConsumerSettings:
    """A consumer's settings, its policy given by field."""
    return ConsumerSettings(name=name, key_sha256=key_sha256, allow=allow, policy=Policy(**policy))


def proxy_settings(mock: RunningMock, **graph: Any) -> Settings:
    """Settings pointing the proxy at a mock, with two consumers."""
    base = GraphSettings(
        tenant_id=MOCK_TENANT_ID,
        client_id=MOCK_CLIENT_ID,
        authority=mock.authority,
        base_url=mock.graph_base_url,
        ca_file=mock.ca_file,
        client_secret=MOCK_CLIENT_SECRET,
        timeout_seconds=10.0,
    )
    return Settings(
        graph=replace(base, **graph),
        consumers=(
            consumer("all", KEY_ALL_SHA, (f"*@{MOCK_DOMAIN}",)),
            consumer("one", KEY_ONE_SHA, (ONE_ADDRESS,)),
        ),
        audit=AuditSettings(hmac_key=AUDIT_KEY),
    )


async def start_proxy(
    aiohttp_client: Any,
    settings: Settings,
    *,
    clock: Clock = MONOTONIC,
    wall_clock: WallClock | None = None,
) -> TestClient[Any, Any]:
    """Serve the real proxy app on a real socket, with the runner settings `serve` uses."""
    app = init_app(settings, clock=clock, wall_clock=wall_clock or FixedWallClock(TEST_NOW))
    server = TestServer(app)
    # TestServer drops constructor kwargs; the runner's settings go to start_server.
    await server.start_server(**runner_kwargs(settings.server))
    client: TestClient[Any, Any] = await aiohttp_client(server)
    return client


@asynccontextmanager
async def serving(
    settings: Settings, *, wall_clock: WallClock | None = None
) -> AsyncIterator[tuple[int, web.Application]]:
    """The proxy exactly as `serve` runs it (an AppRunner: a handler is not cancelled when its
    client leaves, unlike under TestServer) on a free port; yields the port and the app."""
    app = init_app(settings, wall_clock=wall_clock or FixedWallClock(TEST_NOW))
    runner = web.AppRunner(app, **runner_kwargs(settings.server))
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield runner.addresses[0][1], app
    finally:
        await runner.cleanup()


def auth(key: str = KEY_ALL) -> dict[str, str]:
    """Authorization header for a consumer key."""
    return {"Authorization": f"Bearer {key}"}


async def ask(
    client: TestClient[Any, Any], schedules: list[str], window: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    """POST /v1/availability; return status and parsed body, checked for leaks."""
    from tests.support.leaks import assert_no_leak

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
    return client.app[CHAIN].cache


# Far enough that a batch only ever goes because it is full (no timer races in tests).
NEVER_MS = 600_000.0


async def chain_proxy(
    aiohttp_client: Any,
    mock: RunningMock,
    *,
    clock: Clock = MONOTONIC,
    cache: CacheSettings | None = None,
    batching: BatchingSettings | None = None,
    throttle: ThrottleSettings | None = None,
    **graph: Any,
) -> TestClient[Any, Any]:
    """The real proxy on a real socket, with the given chain settings and clock."""
    settings = replace(
        proxy_settings(mock, **graph),
        cache=cache or CacheSettings(),
        batching=batching or BatchingSettings(),
        throttle=throttle or ThrottleSettings(),
    )
    return await start_proxy(aiohttp_client, settings, clock=clock)


# What `serve` needs from the environment for the tests' configurations.
SECRETS_ENV = {
    "FREEBUSY_PROXY_CLIENT_SECRET": MOCK_CLIENT_SECRET,
    "FREEBUSY_PROXY_AUDIT_KEY": AUDIT_KEY,
}
