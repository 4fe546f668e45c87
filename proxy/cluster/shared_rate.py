"""Consumers' rates, global: at most ``rate_per_minute`` in any minute across all replicas.

A moving window per consumer (or feed) in Redis, by the ``limits`` library; the key is the
HMAC of the bucket's name. While Redis is unreachable, each replica allows
1/fallback_replicas of every rate on its own.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, RateLimitItemPerMinute
from limits.aio.strategies import MovingWindowRateLimiter

from proxy.cluster.link import REDIS_ERRORS, ClusterLink
from proxy.core.errors import RateLimited
from proxy.core.ports import RateLimiter


class SharedRate:
    """A RateLimiter whose limits hold across every replica sharing the Redis."""

    def __init__(self, link: ClusterLink, *, fallback: RateLimiter) -> None:
        self._link = link
        self._fallback = fallback
        self._window = MovingWindowRateLimiter(link.limits_storage())
        self._items: dict[int, RateLimitItem] = {}

    async def charge(self, key: str, rate_per_minute: int, *, cost: float = 1.0) -> None:
        """Spend ``cost`` of ``key``'s rate in every replica's count, or raise RateLimited."""
        if rate_per_minute <= 0:
            return
        link = self._link
        if link.sharing:
            item = self._items.get(rate_per_minute)
            if item is None:
                item = self._items[rate_per_minute] = RateLimitItemPerMinute(rate_per_minute)
            # A cost above the rate spends all of it (it could never pass otherwise).
            amount = max(1, min(rate_per_minute, math.ceil(cost)))
            name = link.pseudonym(key)
            try:
                link.count("rate")
                if await self._window.hit(item, "rate", name, cost=amount):
                    return
                link.count("rate")
                stats = await self._window.get_window_stats(item, "rate", name)
            except REDIS_ERRORS as exc:
                link.failed(exc)
            else:
                raise RateLimited(
                    f"at most {rate_per_minute} per minute",
                    retry_after=max(1.0, stats.reset_time - time.time()),
                )
        share = max(1, rate_per_minute // link.fallback_replicas)
        await self._fallback.charge(key, share, cost=cost)
