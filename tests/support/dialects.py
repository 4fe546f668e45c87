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
