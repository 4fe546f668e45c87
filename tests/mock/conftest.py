"""Fixtures for the mock's own tests: a real HTTPS mock per test and a client that trusts it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from proxy.mock import MockSettings, RunningMock, start_mock
from proxy.tls import client_ssl_context

MockFactory = Callable[..., Awaitable[RunningMock]]


@pytest.fixture
async def mock_factory(tmp_path: Path) -> AsyncIterator[MockFactory]:
    """Start mocks with any settings on free ports; all are closed after the test."""
    started: list[RunningMock] = []

    async def start(**settings: Any) -> RunningMock:
        cert_dir = tmp_path / f"mock-{len(started)}"
        running = await start_mock(settings=MockSettings(**settings), cert_dir=cert_dir)
        started.append(running)
        return running

    yield start
    for running in started:
        await running.close()


@pytest.fixture
async def mock(mock_factory: MockFactory) -> RunningMock:
    """A mock with default settings (40 mailboxes, seed 1)."""
    return await mock_factory()


@pytest.fixture
async def session(mock: RunningMock) -> AsyncIterator[aiohttp.ClientSession]:
    """A client session trusting the mock's CA (and the system store)."""
    connector = aiohttp.TCPConnector(ssl=client_ssl_context(mock.ca_file))
    async with aiohttp.ClientSession(connector=connector) as client:
        yield client
