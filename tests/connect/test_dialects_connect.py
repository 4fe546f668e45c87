"""Dialects over delegated connections: a connected person answers, others are not_connected."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from proxy.mock import MOCK_DOMAIN, RunningMock
from tests.support.connect import connect_settings, sign_in
from tests.support.dialects import DAY
from tests.support.leaks import assert_no_leak
from tests.support.proxies import ProxyFactory, auth

ADELE = f"adele.vance@{MOCK_DOMAIN}"
ALEX = f"alex.wilber@{MOCK_DOMAIN}"


async def test_each_dialect_reports_not_connected_per_schedule(
    make_proxy: ProxyFactory, mock_graph: RunningMock, tmp_path: Path
) -> None:
    """After Adele's Individual Connect, every dialect has her items and Alex's error, in shape."""
    proxy = await make_proxy(mock_graph, settings=connect_settings(mock_graph, tmp_path / "c.db"))
    status, page = await sign_in(proxy, mock_graph, "individual", user=ADELE)
    assert status == 200, page

    graph_body = {
        "schedules": [ADELE, ALEX],
        "startTime": {"dateTime": "2026-03-16T00:00:00", "timeZone": "UTC"},
        "endTime": {"dateTime": "2026-03-17T00:00:00", "timeZone": "UTC"},
    }
    async with proxy.post(
        f"/v1.0/users/{ADELE}/calendar/getSchedule", json=graph_body, headers=auth()
    ) as resp:
        text = await resp.text()
        assert resp.status == 200, text
    assert_no_leak(text)
    adele, alex = json.loads(text)["value"]
    assert adele["scheduleItems"]
    assert alex["error"]["responseCode"] == "not_connected"

    google_body = {"timeMin": DAY["start"], "timeMax": DAY["end"], "items": [{"id": ADELE}]}
    google_body["items"].append({"id": ALEX})
    async with proxy.post("/calendar/v3/freeBusy", json=google_body, headers=auth()) as resp:
        text = await resp.text()
        assert resp.status == 200, text
    assert_no_leak(text)
    calendars: dict[str, Any] = json.loads(text)["calendars"]
    assert calendars[ADELE]["busy"]
    assert calendars[ALEX]["errors"] == [{"domain": "global", "reason": "notFound"}]

    async with proxy.get(f"/v1/schedules/{ALEX}/freebusy.ics", params=DAY, headers=auth()) as resp:
        assert resp.status == 502
        assert (await resp.json())["code"] == "not_connected"
    async with proxy.get(f"/v1/schedules/{ADELE}/freebusy.ics", params=DAY, headers=auth()) as resp:
        assert resp.status == 200
        assert b"FREEBUSY;FBTYPE=" in await resp.read()
