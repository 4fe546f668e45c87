"""The gate every Graph call holds, shared by all replicas through Redis.

Per mailbox (by pseudonym): the ten-minute budget as a moving window (the ``limits``
library), at most ``mailbox_concurrency`` calls in flight as leases (one Lua script: a
sorted set of holders scored by expiry on Redis' own clock, so replicas' clocks do not
matter and a dead replica's leases simply expire), and a hold: a Retry-After Graph gave one
replica keeps every replica's calls for that mailbox back until it has passed. Then one of
this replica's own ``max_concurrency`` slots.

While the link is in fallback the local gate (1/fallback_replicas of each limit) decides;
while it rejoins, both do.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from limits import RateLimitItemPerMinute
from limits.aio.strategies import MovingWindowRateLimiter

from proxy.cluster.link import REDIS_ERRORS, ClusterLink, Mode
from proxy.core.ports import CallGate
from proxy.observability.metrics import Metrics

log = logging.getLogger(__name__)

BUDGET_MINUTES = 10
# A waiting call asks again this often (a slot is usually freed long before its lease ends).
_POLL_S = 0.02

# KEYS: the mailbox's leases (sorted set), its hold. ARGV: limit, lease ms, holder.
# Returns {1, 0} granted; {0, ms} held by a Retry-After for ms; {2, ms} full, the first
# lease ends in ms.
_ACQUIRE = """
local held = redis.call('PTTL', KEYS[2])
if held > 0 then return {0, held} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, 0}
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {2, math.max(1, tonumber(first[2]) - now)}
"""

# KEYS: the mailbox's hold. ARGV: ms. Extends the hold, never shortens it.
_HOLD = """
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
end
return 1
"""


class SharedGate:
    """A CallGate whose limits hold across every replica sharing the Redis."""

    def __init__(
        self,
        link: ClusterLink,
        *,
        fallback: CallGate,
        mailbox_concurrency: int,
        mailbox_budget: int,
        max_concurrency: int,
        metrics: Metrics,
    ) -> None:
        self._link = link
        self._fallback = fallback
        self._limit = mailbox_concurrency
        self._lease_ms = int(link.lease_s * 1000)
        self._max_hold_s = link.settings.lease_seconds
        self._global = asyncio.Semaphore(max_concurrency)
        self._events = metrics.throttle_events
        self._acquire_script = link.redis.register_script(_ACQUIRE)
        self._hold_script = link.redis.register_script(_HOLD)
        self._budget = MovingWindowRateLimiter(link.limits_storage())
        self._budget_item = RateLimitItemPerMinute(mailbox_budget, BUDGET_MINUTES)
        self._holders = itertools.count()

    @asynccontextmanager
    async def hold(self, mailbox: str) -> AsyncIterator[bool]:
        """Yield True while a call for ``mailbox`` may be in flight, or False if over budget."""
        mode = self._link.mode
        if mode is Mode.SHARED:
            holder = await self._acquire(mailbox)
            if holder is not None:
                async with self._leased(mailbox, holder) as admitted:
                    yield admitted
                return
        elif mode is Mode.REJOINING:
            async with self._fallback.hold(mailbox) as admitted:
                holder = await self._acquire(mailbox) if admitted else False
                if holder is not None:
                    async with self._leased(mailbox, holder) as both:
                        yield admitted and both
                    return
        # Fallback (Redis failed, perhaps just now): local limits, after the quiet time.
        await self._link.quiet()
        async with self._fallback.hold(mailbox) as admitted:
            yield admitted

    def hold_off(self, mailbox: str, seconds: float) -> None:
        """Hold every replica's calls for ``mailbox`` for ``seconds`` (Graph's Retry-After)."""
        self._fallback.hold_off(mailbox, seconds)
        if self._link.sharing and seconds > 0:
            self._link.spawn(self._set_hold(mailbox, seconds))

    async def _set_hold(self, mailbox: str, seconds: float) -> None:
        link = self._link
        try:
            link.count("hold")
            await self._hold_script(
                keys=[link.key("hold", link.pseudonym(mailbox))], args=[int(seconds * 1000)]
            )
        except REDIS_ERRORS as exc:
            link.failed(exc)

    @asynccontextmanager
    async def _leased(self, mailbox: str, holder: str | bool) -> AsyncIterator[bool]:
        """With a lease taken (or False: over budget), a slot of this replica's own too."""
        if holder is False:
            yield False
            return
        assert isinstance(holder, str)
        try:
            if self._global.locked():
                self._events.labels("global_wait").inc()
            async with self._global:
                yield True
        finally:
            self._link.spawn(self._release(mailbox, holder))

    async def _acquire(self, mailbox: str) -> str | bool | None:
        """A lease's holder id, False when the budget is spent, None when Redis failed."""
        link = self._link
        pseudonym = link.pseudonym(mailbox)
        keys = [link.key("lease", pseudonym), link.key("hold", pseudonym)]
        try:
            link.count("budget")
            if not await self._budget.hit(self._budget_item, "budget", pseudonym):
                self._events.labels("mailbox_budget").inc()
                log.info("a mailbox's call budget is spent; the call is not sent")
                return False
            holder = f"{link.replica}:{next(self._holders)}"
            told: set[int] = set()
            while True:
                link.count("lease")
                granted, wait_ms = await self._acquire_script(
                    keys=keys, args=[self._limit, self._lease_ms, holder]
                )
                if granted == 1:
                    return holder
                wait_s = int(wait_ms) / 1000
                if granted == 0:
                    if wait_s > self._max_hold_s:
                        # Longer than a call may wait: report it throttled now.
                        return False
                    if 0 not in told:
                        self._events.labels("mailbox_hold").inc()
                else:
                    wait_s = min(wait_s, _POLL_S)
                    if 2 not in told:
                        self._events.labels("mailbox_wait").inc()
                told.add(int(granted))
                await asyncio.sleep(wait_s * random.uniform(0.5, 1.5))  # noqa: S311
                if not link.sharing:
                    return None
        except REDIS_ERRORS as exc:
            link.failed(exc)
            return None

    async def _release(self, mailbox: str, holder: str) -> None:
        link = self._link
        try:
            link.count("release")
            await link.redis.zrem(link.key("lease", link.pseudonym(mailbox)), holder)
        except REDIS_ERRORS as exc:
            # The lease expires on its own.
            link.failed(exc)
