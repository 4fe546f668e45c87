"""Fixtures for the mock's own tests: a real HTTPS mock per test and a client that trusts it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from proxy.mock import RunningMock
from proxy.sources.tls import client_ssl_context
from tests.support.mock_graph import MockFactory


@pytest.fixture
def mock_factory(make_mock: MockFactory) -> MockFactory:
    """Start mocks with any settings (the suite's make_mock); all are closed after the test."""
    return make_mock


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
