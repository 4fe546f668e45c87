"""One error path: the same refusal is recorded with the same stable code on every dialect."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from proxy.config.schema import AuditSettings
from proxy.mock import MOCK_DOMAIN, RunningMock
from tests.support.proxies import (
    AUDIT_KEY,
    KEY_ALL,
    KEY_ONE,
    ONE_ADDRESS,
    ProxyFactory,
    proxy_settings,
)

OTHER = f"megan.bowen@{MOCK_DOMAIN}"
DAY = ("2026-03-16T00:00:00Z", "2026-03-17T00:00:00Z")
LONG = ("2026-03-01T00:00:00Z", "2026-09-01T00:00:00Z")


async def ask_everywhere(
    proxy: TestClient[Any, Any], key: str, address: str, window: tuple[str, str]
) -> dict[str, int]:
    """The same question on every route that answers one; the status per route."""
    start, end = window
    headers = {"Authorization": f"Bearer {key}"}
    graph_time = {"timeZone": "UTC"}
    asks = {
        "POST /v1/availability": proxy.post(
            "/v1/availability",
            json={"schedules": [address], "start": start, "end": end},
            headers=headers,
        ),
        "GET /v1/availability": proxy.get(
            "/v1/availability",
            params={"schedules": address, "start": start, "end": end},
            headers=headers,
        ),
        "POST /v1.0/users/{id}/calendar/getSchedule": proxy.post(
            f"/v1.0/users/{address}/calendar/getSchedule",
            json={
                "schedules": [address],
                "startTime": {"dateTime": start[:-1], **graph_time},
                "endTime": {"dateTime": end[:-1], **graph_time},
            },
            headers=headers,
        ),
        "POST /calendar/v3/freeBusy": proxy.post(
            "/calendar/v3/freeBusy",
            json={"timeMin": start, "timeMax": end, "items": [{"id": address}]},
            headers=headers,
        ),
        "GET /v1/schedules/{address}/freebusy.ics": proxy.get(
            f"/v1/schedules/{address}/freebusy.ics",
            params={"start": start, "end": end},
            headers=headers,
        ),
    }
    statuses = {}
    for route, request in asks.items():
        async with request as resp:
            await resp.read()
            statuses[route] = resp.status
    return statuses


@pytest.mark.parametrize(
    ("key", "address", "window", "outcome", "status"),
    [
        (KEY_ONE, OTHER, DAY, "schedule_not_allowed", 403),
        ("fbp_not-a-key", ONE_ADDRESS, DAY, "unauthorized", 401),
        (KEY_ALL, ONE_ADDRESS, LONG, "window_too_long", 400),
    ],
)
async def test_the_same_refusal_is_the_same_outcome_on_every_dialect(
    make_proxy: ProxyFactory,
    mock_graph: RunningMock,
    tmp_path: Path,
    key: str,
    address: str,
    window: tuple[str, str],
    outcome: str,
    status: int,
) -> None:
    """Each dialect answers in its own shape, and the audit line carries our stable code."""
    path = tmp_path / "audit.jsonl"
    settings = replace(
        proxy_settings(mock_graph), audit=AuditSettings(hmac_key=AUDIT_KEY, file=path)
    )
    proxy = await make_proxy(mock_graph, settings=settings)
    statuses = await ask_everywhere(proxy, key, address, window)
    assert set(statuses.values()) == {status}, statuses
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert {line["route"]: line["outcome"] for line in lines} == dict.fromkeys(statuses, outcome)
