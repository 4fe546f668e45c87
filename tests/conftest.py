"""Shared fixtures: the mock Graph over real HTTPS, the proxy over a real socket, leak guards."""

from __future__ import annotations

import logging
import os
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import settings as hypothesis_settings

from proxy.access.consumers import new_key
from proxy.config.schema import (
    AuditSettings,
    ConsumerSettings,
    GraphSettings,
    LimitSettings,
    Settings,
)
from proxy.core.clock import MONOTONIC, Clock, FixedWallClock, WallClock
from proxy.mock import (
    MOCK_CLIENT_ID,
    MOCK_CLIENT_SECRET,
    MOCK_DOMAIN,
    MOCK_TENANT_ID,
    MockSettings,
    RunningMock,
    start_mock,
)
from proxy.web.app import init_app, run_kwargs
from proxy.web.headers import server_kwargs

# Keys for the consumers every proxy under test knows.
KEY_ALL, KEY_ALL_SHA = new_key()
KEY_ONE, KEY_ONE_SHA = new_key()
ONE_ADDRESS = f"adele.vance@{MOCK_DOMAIN}"

# The audit trail's HMAC key in tests (what FREEBUSY_PROXY_AUDIT_KEY holds in production).
AUDIT_KEY = "test-audit-key-" + "k" * 32
# "Now" for every proxy under test: the tests' fixed dates (2026-01 to 2026-04) lie ahead.
TEST_NOW = datetime(2026, 1, 1, tzinfo=UTC)

# Strings that must never appear in a log line, a response or a file we write. The mock's
# access and id tokens are JWTs ("eyJ"); its refresh tokens (delegated connections) start
# with "0.M.".
FORBIDDEN_MARKERS = (
    "CANARY",
    MOCK_CLIENT_SECRET,
    KEY_ALL,
    KEY_ONE,
    "eyJ",
    "0.M.",
    AUDIT_KEY,
)


@pytest.fixture(autouse=True)
def _hostile_ca_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Set the variables that make requests ignore Session.verify, as many containers do."""
    bundle = ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt"
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", bundle)
    monkeypatch.setenv("CURL_CA_BUNDLE", bundle)


@pytest.fixture(autouse=True)
def log_capture(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Capture every log line at DEBUG and fail the test if a secret or canary is in one."""
    caplog.set_level(logging.DEBUG)
    yield caplog
    # caplog.text holds only this (teardown) phase; the test body logs in the "call" phase.
    earlier = [r for when in ("setup", "call") for r in caplog.get_records(when)]
    text = "\n".join(logging.Formatter().format(r) for r in earlier) + caplog.text
    for marker in FORBIDDEN_MARKERS:
        assert marker not in text, f"a log line contains {marker[:8]}…"


def assert_no_leak(*texts: str) -> None:
    """Fail if any forbidden marker is in any of the texts."""
    for text in texts:
        for marker in FORBIDDEN_MARKERS:
            assert marker not in text, f"leaked {marker[:8]}…"


MockFactory = Callable[..., Awaitable[RunningMock]]


@pytest.fixture
async def make_mock(tmp_path: Path) -> AsyncIterator[MockFactory]:
    """Start mocks with given MockSettings fields; all are closed after the test."""
    started: list[RunningMock] = []

    async def make(**settings: Any) -> RunningMock:
        cert_dir = tmp_path / f"mock{len(started)}"
        cert_dir.mkdir()
        running = await start_mock(settings=MockSettings(**settings), cert_dir=cert_dir)
        started.append(running)
        return running

    yield make
    for running in started:
        await running.close()


@pytest.fixture
async def mock_graph(make_mock: MockFactory) -> RunningMock:
    """The default mock organisation over HTTPS."""
    return await make_mock()


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
        limits=LimitSettings(),
        consumers=(
            ConsumerSettings(name="all", key_sha256=KEY_ALL_SHA, allow=(f"*@{MOCK_DOMAIN}",)),
            ConsumerSettings(name="one", key_sha256=KEY_ONE_SHA, allow=(ONE_ADDRESS,)),
        ),
        audit=AuditSettings(hmac_key=AUDIT_KEY),
    )


ProxyFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
def make_proxy(aiohttp_client: Any) -> ProxyFactory:
    """Serve the real proxy app on a real socket, configured for a given mock."""

    async def make(
        mock: RunningMock,
        *,
        settings: Settings | None = None,
        clock: Clock = MONOTONIC,
        wall_clock: WallClock | None = None,
        **graph: Any,
    ) -> TestClient[Any, Any]:
        settings = settings or proxy_settings(mock, **graph)
        app = init_app(settings, clock=clock, wall_clock=wall_clock or FixedWallClock(TEST_NOW))
        server = TestServer(app)
        # TestServer drops constructor kwargs; the parser limits go to start_server.
        await server.start_server(**run_kwargs(), **server_kwargs(settings.server))
        client: TestClient[Any, Any] = await aiohttp_client(server)
        return client

    return make


@pytest.fixture
async def proxy(make_proxy: ProxyFactory, mock_graph: RunningMock) -> TestClient[Any, Any]:
    """The proxy in front of the default mock."""
    return await make_proxy(mock_graph)


def auth(key: str = KEY_ALL) -> dict[str, str]:
    """Authorization header for a consumer key."""
    return {"Authorization": f"Bearer {key}"}


# Hypothesis: modest example counts so CI on two cores stays within minutes; no deadline
# (a real socket and a busy machine make single examples slow now and then). The request
# fuzzer sets its own, larger count. HYPOTHESIS_PROFILE=thorough runs ten times as many.
hypothesis_settings.register_profile("ci", max_examples=150, deadline=None, print_blob=True)
hypothesis_settings.register_profile("thorough", max_examples=1500, deadline=None, print_blob=True)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
