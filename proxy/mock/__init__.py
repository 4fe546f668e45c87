"""A faithful mock of Microsoft Graph getSchedule and the Microsoft identity platform.

Served over HTTPS with a CA generated at start-up, so the real msal library and the proxy's
real aiohttp client work against it unchanged. Every free-text field it serves carries a
``CANARY-`` marker, so tests can prove none of it leaks through the proxy.
"""

from proxy.mock.endpoints import create_mock_app
from proxy.mock.faults import Fault
from proxy.mock.server import RunningMock, serve_forever, start_mock
from proxy.mock.settings import (
    CANARY_PREFIX,
    MOCK_CLIENT_ID,
    MOCK_CLIENT_SECRET,
    MOCK_DOMAIN,
    MOCK_TENANT_ID,
    PERSONAL_ACCOUNTS_TENANT_ID,
    MockSettings,
)
from proxy.mock.state import MockGraph

__all__ = [
    "CANARY_PREFIX",
    "MOCK_CLIENT_ID",
    "MOCK_CLIENT_SECRET",
    "MOCK_DOMAIN",
    "MOCK_TENANT_ID",
    "PERSONAL_ACCOUNTS_TENANT_ID",
    "Fault",
    "MockGraph",
    "MockSettings",
    "RunningMock",
    "create_mock_app",
    "serve_forever",
    "start_mock",
]
