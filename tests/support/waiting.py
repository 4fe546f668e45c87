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


async def until_true(condition: Callable[[], Awaitable[bool]]) -> None:
    """until() for a state read over the network (Redis, another process's /readyz)."""
    try:
        async with asyncio.timeout(30):
            # Such states have no event to wait on either.
            while not await condition():  # noqa: ASYNC110
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError("the expected state was never reached") from None
