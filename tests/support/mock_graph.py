"""Talking to the mock Graph directly: getSchedule bodies, calls, a trusting session."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from proxy.mock import RunningMock

MockFactory = Callable[..., Awaitable[RunningMock]]
"""The make_mock fixture: a running mock for given MockSettings fields."""

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def schedule_body(
    schedules: list[str],
    start: str = "2026-03-16T00:00:00",
    end: str = "2026-03-17T00:00:00",
    *,
    zone: str = "UTC",
    interval: Any = 60,
) -> dict[str, Any]:
    """Return a camelCase getSchedule body (interval omitted when ``...``)."""
    body: dict[str, Any] = {
        "schedules": schedules,
        "startTime": {"dateTime": start, "timeZone": zone},
        "endTime": {"dateTime": end, "timeZone": zone},
    }
    if interval is not ...:
        body["availabilityViewInterval"] = interval
    return body


async def post_schedule(
    session: aiohttp.ClientSession,
    mock: RunningMock,
    body: Any,
    *,
    mailbox: str | None = None,
    token: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:
    """POST getSchedule as the mailbox in the URL; return status, headers and JSON (or text)."""
    if mailbox is None:
        mailbox = mock.graph.organisation.addresses()[0]
    if token is None:
        token = mock.graph.issue_app_token()
    sent = {"Authorization": f"Bearer {token}", **(headers or {})}
    url = f"{mock.graph_base_url}/users/{mailbox}/calendar/getSchedule"
    async with session.post(url, json=body, headers=sent) as response:
        text = await response.text()
        try:
            payload: Any = await response.json(content_type=None)
        except ValueError:
            payload = text
        return response.status, dict(response.headers), payload


def open_session(mock: RunningMock) -> aiohttp.ClientSession:
    """Return a new client session trusting ``mock``'s CA; use it with ``async with``."""
    from proxy.sources.tls import client_ssl_context

    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=client_ssl_context(mock.ca_file))
    )
