"""Token buckets: a steady rate with a burst of one minute's allowance, per key."""

from __future__ import annotations

from collections import OrderedDict

from proxy.core.clock import Clock
from proxy.core.errors import RateLimited


class TokenBuckets:
    """One bucket per key (a consumer's name, a feed's, a client's address), on the monotonic
    clock.

    ``max_keys`` None: memory is bounded by the keys the configuration names. Keyed by
    something a stranger chooses (a remote address), at most ``max_keys`` buckets are kept and
    the least recently used goes first.
    """

    def __init__(self, clock: Clock, *, max_keys: int | None = None) -> None:
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(
        self,
        key: str,
        rate_per_minute: int,
        *,
        cost: float = 1.0,
        detail: str | None = None,
    ) -> None:
        """Spend ``cost`` tokens of ``key``'s bucket or raise RateLimited (saying ``detail``);
        a rate of 0 means no limit. A cost above the bucket's capacity spends a full bucket
        (it could never pass otherwise)."""
        if rate_per_minute <= 0:
            return
        now = self._clock()
        capacity = float(rate_per_minute)
        cost = min(cost, capacity)
        per_second = rate_per_minute / 60.0
        tokens, stamp = self._buckets.get(key, (capacity, now))
        # Defensive: a clock that steps backwards must neither mint tokens nor go negative.
        tokens = min(capacity, tokens + max(0.0, now - stamp) * per_second)
        if tokens < cost:
            self._store(key, tokens, max(now, stamp))
            raise RateLimited(
                detail or f"at most {rate_per_minute} per minute",
                retry_after=(cost - tokens) / per_second,
            )
        self._store(key, tokens - cost, max(now, stamp))

    async def charge(self, key: str, rate_per_minute: int, *, cost: float = 1.0) -> None:
        """take() as the RateLimiter port asks it (in this process, nothing to await)."""
        self.take(key, rate_per_minute, cost=cost)

    def _store(self, key: str, tokens: float, stamp: float) -> None:
        self._buckets[key] = (tokens, stamp)
        if self._max_keys is not None:
            self._buckets.move_to_end(key)
            while len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
