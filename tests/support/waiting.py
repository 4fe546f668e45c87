"""Waiting for an observable state that has no event to await (mock counters, metrics)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def until(condition: Callable[[], bool]) -> None:
    """Wait until ``condition()`` holds (polling an observable state, not guessing a delay)."""
    try:
        async with asyncio.timeout(10):
            # The states watched (mock counters, metrics) have no event to wait on.
            while not condition():  # noqa: ASYNC110
                await asyncio.sleep(0.002)
    except TimeoutError:
        raise AssertionError("the expected state was never reached") from None


async def eventually(condition: Callable[[], Awaitable[bool]]) -> None:
    """Wait until the awaited ``condition()`` holds (an HTTP answer, another process's state)."""
    try:
        async with asyncio.timeout(30):
            # Another process's state, read over HTTP: nothing here to wait on.
            while not await condition():  # noqa: ASYNC110
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError("the expected state was never reached") from None
