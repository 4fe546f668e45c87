"""Micro-batching: fetches for different mailboxes over the same window share getSchedule calls.

A fetch joins the open batch for its window. The batch goes upstream when it holds
``max_schedules`` addresses, or ``wait_s`` after it opened. When nothing is in flight
through this batcher the batch goes at once: an idle proxy adds no waiting, and under load,
when calls are in flight anyway, concurrent fetches get folded together.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from proxy.core.errors import UpstreamFailure
from proxy.core.model import ScheduleResult, Window
from proxy.core.ports import ScheduleSource
from proxy.observability.metrics import Metrics


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What one upstream call gave a batch: results, or the failure of the whole call."""

    results: dict[str, ScheduleResult]
    failure: UpstreamFailure | None = None


@dataclass(eq=False)
class _Batch:
    """Addresses (case-folded -> as spelled) waiting to go upstream together."""

    window: Window
    done: asyncio.Future[_Outcome]
    addresses: dict[str, str] = field(default_factory=dict)
    callers: int = 0
    timer: asyncio.TimerHandle | None = None


class BatchingScheduleSource:
    """A ScheduleSource that folds concurrent fetches with the same window into one."""

    def __init__(
        self,
        source: ScheduleSource,
        *,
        wait_s: float,
        max_schedules: int = 20,
        metrics: Metrics,
    ) -> None:
        self._source = source
        self._wait_s = wait_s
        self._max = max_schedules
        self._metrics = metrics
        self._open: dict[Window, _Batch] = {}
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def get_schedules(
        self, addresses: Sequence[str], window: Window
    ) -> dict[str, ScheduleResult]:
        """Results for ``addresses``, fetched in a call shared with concurrent fetches."""
        return await self.batched(addresses, window, wait_s=self._wait_s, idle_sends=True)

    async def batched(
        self, addresses: Sequence[str], window: Window, *, wait_s: float, idle_sends: bool
    ) -> dict[str, ScheduleResult]:
        """As get_schedules(), with a batch open ``wait_s`` if this opens one; ``idle_sends``:
        with nothing in flight, call at once instead. (Replicas' misses forwarded to the
        window's owner wait longer, for others spread by the hop, and even when it is idle:
        they come while their own replica is busy.)"""
        batch = self._open.get(window)
        idle = not self._in_flight and idle_sends
        if batch is None and (idle or wait_s <= 0):
            # Idle: nobody to wait for and nobody can join, so call in this very task.
            self._metrics.batch_schedules.observe(len(addresses))
            self._metrics.batch_callers.observe(1)
            self._in_flight += 1
            try:
                return await self._source.get_schedules(addresses, window)
            finally:
                self._in_flight -= 1
        if batch is None:
            batch = _Batch(window=window, done=asyncio.get_running_loop().create_future())
            self._open[window] = batch
            batch.timer = asyncio.get_running_loop().call_later(wait_s, self._send, batch)
        for address in addresses:
            batch.addresses.setdefault(address.casefold(), address)
        batch.callers += 1
        if len(batch.addresses) >= self._max:
            self._send(batch)
        # Shielded: one caller giving up must not cancel the call others wait for.
        outcome = await asyncio.shield(batch.done)
        if outcome.failure is not None:
            raise outcome.failure
        return {address.casefold(): outcome.results[address.casefold()] for address in addresses}

    def _send(self, batch: _Batch) -> None:
        """Close the batch and start its upstream call (once)."""
        if self._open.get(batch.window) is not batch:
            return
        del self._open[batch.window]
        if batch.timer is not None:
            batch.timer.cancel()
        self._metrics.batch_schedules.observe(len(batch.addresses))
        self._metrics.batch_callers.observe(batch.callers)
        self._in_flight += 1
        task = asyncio.get_running_loop().create_task(self._call(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _call(self, batch: _Batch) -> None:
        try:
            results = await self._source.get_schedules(list(batch.addresses.values()), batch.window)
        except UpstreamFailure as exc:
            batch.done.set_result(_Outcome(results={}, failure=exc))
        except asyncio.CancelledError:
            batch.done.cancel()
            raise
        except Exception as exc:
            batch.done.set_exception(exc)
            raise
        else:
            batch.done.set_result(_Outcome(results=results))
        finally:
            self._in_flight -= 1
