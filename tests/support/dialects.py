"""Helpers shared by the dialect tests: the JSON API as the reference answer."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from aiohttp.test_utils import TestClient

from proxy.core.timefmt import parse_rfc3339
from tests.support.leaks import assert_no_leak
from tests.support.proxies import auth

DAY = {"start": "2026-03-16T00:00:00Z", "end": "2026-03-17T00:00:00Z"}
# A Sunday-to-Tuesday window across the US switch to summer time (2026-03-08).
DST_WEEK = {"start": "2026-03-06T00:00:00Z", "end": "2026-03-13T00:00:00Z"}

Span = tuple[datetime, datetime]


async def reference(
    proxy: TestClient[Any, Any],
    addresses: list[str],
    window: dict[str, str],
    key: str | None = None,
) -> dict[str, list[tuple[str, datetime, datetime]]]:
    """The JSON API's items (status, start, end) per address for the same window."""
    body = {"schedules": addresses, **window}
    headers = auth() if key is None else auth(key)
    async with proxy.post("/v1/availability", json=body, headers=headers) as resp:
        text = await resp.text()
        assert resp.status == 200, text
    assert_no_leak(text)
    return {
        entry["schedule"]: [
            (item["status"], parse_rfc3339(item["start"]), parse_rfc3339(item["end"]))
            for item in entry["items"]
        ]
        for entry in json.loads(text)["schedules"]
    }


def merged(items: list[tuple[str, datetime, datetime]], statuses: set[str]) -> list[Span]:
    """Spans of the items with these statuses, overlapping and touching ones merged."""
    spans = sorted((start, end) for status, start, end in items if status in statuses)
    out: list[Span] = []
    for start, end in spans:
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


async def ask_everywhere(
    proxy: TestClient[Any, Any], key: str, address: str, window: tuple[str, str]
) -> dict[str, int]:
    """The same question on every route that answers one (the slot search included); the
    status per route."""
    start, end = window
    headers = {"Authorization": f"Bearer {key}"}
    graph_time = {"timeZone": "UTC"}
    asks = {
        "POST /v1/slots": proxy.post(
            "/v1/slots",
            json={
                "participants": [{"schedule": address}],
                "start": start,
                "end": end,
                "duration_minutes": 30,
            },
            headers=headers,
        ),
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
