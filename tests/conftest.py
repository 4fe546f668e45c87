"""Fixtures: the mock Graph over real HTTPS, the proxy over a real socket, leak guards.

Builders and fakes live in tests/support/; this file only holds fixtures.
"""

from __future__ import annotations

import logging
import os
import secrets
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import settings as hypothesis_settings

from proxy.config.schema import DATABASE_PASSWORD_ENV, Settings
from proxy.core.clock import MONOTONIC, Clock, WallClock
from proxy.mock import MockSettings, RunningMock, start_mock
from tests.support.leaks import FORBIDDEN_MARKERS
from tests.support.mock_graph import MockFactory
from tests.support.postgres import PostgresServer, start_postgres, stop_postgres
from tests.support.proxies import ProxyFactory, proxy_settings, start_proxy
from tests.support.redis_server import RedisServer


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
        return await start_proxy(aiohttp_client, settings, clock=clock, wall_clock=wall_clock)

    return make


@pytest.fixture
async def proxy(make_proxy: ProxyFactory, mock_graph: RunningMock) -> TestClient[Any, Any]:
    """The proxy in front of the default mock."""
    return await make_proxy(mock_graph)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL cluster for the whole run (started only when a test asks)."""
    server = start_postgres()
    yield server
    stop_postgres(server)


@pytest.fixture
async def postgres_url(
    postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[str]:
    """A fresh database of its own for one test; its password is in the environment."""
    import asyncpg

    name = f"t_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(
        postgres_server.url("postgres"), password=postgres_server.password
    )
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    monkeypatch.setenv(DATABASE_PASSWORD_ENV, postgres_server.password)
    yield postgres_server.url(name)
    admin = await asyncpg.connect(
        postgres_server.url("postgres"), password=postgres_server.password
    )
    try:
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    finally:
        await admin.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """[connect] settings of each store backend in turn: a SQLite file, or a PostgreSQL URL."""
    if request.param == "sqlite":
        return {"storage_path": tmp_path / "c.db"}
    server: PostgresServer = request.getfixturevalue("postgres_server")
    url: str = request.getfixturevalue("postgres_url")
    return {"storage_url": url, "database_password": server.password}


@pytest.fixture
async def redis_server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    """A real redis-server (Debian's) on a free port, without persistence."""
    directory = tmp_path / "redis"
    directory.mkdir()
    server = RedisServer(directory)
    await server.start()
    yield server
    await server.stop()


# Hypothesis: modest example counts so CI on two cores stays within minutes; no deadline
# (a real socket and a busy machine make single examples slow now and then). The request
# fuzzer sets its own, larger count. HYPOTHESIS_PROFILE=thorough runs ten times as many.
hypothesis_settings.register_profile("ci", max_examples=150, deadline=None, print_blob=True)
hypothesis_settings.register_profile("thorough", max_examples=1500, deadline=None, print_blob=True)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
