"""Event-loop lag: a loop held by work shows in /metrics as the worst lag and in the histogram."""

from __future__ import annotations

import re
import time
from typing import Any

from aiohttp.test_utils import TestClient


async def _scrape(proxy: TestClient[Any, Any]) -> str:
    async with proxy.get("/metrics") as resp:
        assert resp.status == 200
        return await resp.text()


def _value(text: str, name: str) -> float:
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert match is not None, name
    return float(match.group(1))


def _above_50ms(text: str) -> float:
    total = _value(text, "freebusy_event_loop_lag_seconds_count")
    return total - _value(text, r'freebusy_event_loop_lag_seconds_bucket\{le="0.05"\}')


async def test_a_held_loop_is_reported_as_lag(proxy: TestClient[Any, Any]) -> None:
    """Holding the loop for 80 ms (as a long computation would) is seen, by the next scrape,
    as a lag of at least the hold less one timer interval, counted above the 50 ms bucket."""
    before = await _scrape(proxy)
    time.sleep(0.08)  # noqa: ASYNC251  # holding the loop is the behaviour under test
    # The overdue timer runs in the loop's next turn, before this request is even read.
    after = await _scrape(proxy)
    assert _value(after, "freebusy_event_loop_lag_max_seconds") >= 0.07
    assert _above_50ms(after) >= _above_50ms(before) + 1
